"""Input events: the wire contract, one JSON object per Kafka message, key = room_id.

Unknown fields are kept (``extra="allow"``) so that a producer on a newer schema loses nothing
when it passes through livewatch; money is ``Decimal`` (JSON: a string such as "99.00" or a number).
The readable version: docs/events.md.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from schemas.findings import EnforcementAction, Subject, derived_id
from schemas.version import SCHEMA_VERSION

#: Longest text field accepted; anything longer is rejected to the dead-letter output, because a
#: megabyte "comment" is an attack or a bug, and matching it would stall a partition.
MAX_TEXT_CHARS = 20_000

Identifier = Annotated[str, Field(min_length=1, max_length=256)]
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2, allow_inf_nan=False)]
EventTime = Annotated[int, Field(ge=946_684_800_000, description="event time, ms since the Unix epoch")]


class BaseEvent(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=False)

    schema_version: int = SCHEMA_VERSION
    event_id: Identifier
    room_id: Identifier
    platform: Identifier
    ts: EventTime

    if TYPE_CHECKING:  # every event model declares its own literal ``kind`` (the wire discriminator)
        kind: str


class UserSignals(BaseModel):
    """Optional account signals a platform may attach to a comment (used by the bot-flood detector)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    account_age_days: int | None = Field(default=None, ge=0)
    level: int | None = Field(default=None, ge=0)
    device_id: str | None = Field(default=None, max_length=256)
    ip: str | None = Field(default=None, max_length=64)
    #: rooms the account is active in right now, as the platform counts them (a hired account often
    #: works several rooms at once; livewatch's per-room state cannot see that itself)
    active_rooms: int | None = Field(default=None, ge=0)


Role = Literal["viewer", "host", "operator"]


class _Comment(BaseEvent):
    user_id: Identifier
    text: Text
    role: Role = "viewer"
    user: UserSignals | None = None


class ChatEvent(_Comment):
    """A comment in the room's chat."""

    kind: Literal["chat"] = "chat"


class DanmakuEvent(_Comment):
    """A bullet comment (弹幕) flying over the video."""

    kind: Literal["danmaku"] = "danmaku"


class TranscriptEvent(BaseEvent):
    """A segment of ASR transcript of the stream's audio."""

    kind: Literal["transcript"] = "transcript"
    speaker: Literal["host", "guest", "unknown"] = "host"
    text: Text
    start_ms: int = Field(ge=0, description="segment start, ms from stream start")
    end_ms: int = Field(ge=0)

    @model_validator(mode="after")
    def _end_after_start(self) -> TranscriptEvent:
        if self.end_ms < self.start_ms:
            raise ValueError("end_ms must not be before start_ms")
        return self


ProductCategory = Literal[
    "food", "health_food", "cosmetics", "drug", "medical_device", "apparel", "electronics", "general"
]


class PriceTagEvent(BaseEvent):
    """The price card shown (or hidden) for a product in the room."""

    kind: Literal["price_tag"] = "price_tag"
    product_id: Identifier
    title: Text
    category: ProductCategory = "general"
    price: Money
    original_price: Money | None = None
    price_basis: str | None = Field(default=None, max_length=500)
    visible: bool = True
    currency: Literal["CNY"] = "CNY"


class ProductOnAir(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    product_id: Identifier
    title: Text = ""
    category: ProductCategory = "general"


class StreamMetaEvent(BaseEvent):
    """Stream-level state: who is hosting, AI labelling, which products are on air."""

    kind: Literal["stream_meta"] = "stream_meta"
    status: Literal["live", "ended"] = "live"
    host_kind: Literal["human", "ai", "mixed"] = "human"
    ai_label_visible: bool = False
    aigc_score: float | None = Field(default=None, ge=0.0, le=1.0)
    implicit_label: str | None = Field(default=None, max_length=500)
    products: list[ProductOnAir] = Field(default_factory=list, max_length=500)
    operator_id: str | None = Field(default=None, max_length=256)


class OrderEvent(BaseEvent):
    kind: Literal["order"] = "order"
    order_id: Identifier | None = None
    product_id: Identifier
    price: Money
    qty: int = Field(ge=1)


class OverturnEvent(BaseEvent):
    """An enforcement action overturned on appeal (a lead's decision in the review console): the subject's ladder
    forgets the strikes the action introduced. ``ts`` is the decision's time; published by the console, keyed by
    room like every input, so replays decide it at the same place (docs/console.md, "Decisions and appeals")."""

    kind: Literal["overturn"] = "overturn"
    action_id: Identifier = Field(description="the overturned action's id")
    subject: Subject = Field(description="the overturned action's subject, as the action names it")
    appeal_ref: Identifier
    reviewer: Identifier
    revoke_action_id: Identifier | None = Field(default=None, description="the compensating revoke action's id")

    @classmethod
    def of(cls, action: EnforcementAction, ts: int, reviewer: str) -> OverturnEvent:
        """The overturn of ``action`` decided at ``ts``. Its id and its revoke's are derived from the action's: one
        overturn per action, whether the publish is retried or a second console decides it."""
        return cls(
            event_id=derived_id("overturn", action.action_id),
            room_id=action.room_id,
            platform=action.platform,
            ts=ts,
            action_id=action.action_id,
            subject=action.subject,
            appeal_ref=action.appeal_ref,
            reviewer=reviewer,
            revoke_action_id=derived_id("revoke", action.action_id),
        )


Event = Annotated[
    ChatEvent | DanmakuEvent | TranscriptEvent | PriceTagEvent | StreamMetaEvent | OrderEvent | OverturnEvent,
    Field(discriminator="kind"),
]
EVENT_MODELS: tuple[type[BaseEvent], ...] = (
    ChatEvent,
    DanmakuEvent,
    TranscriptEvent,
    PriceTagEvent,
    StreamMetaEvent,
    OrderEvent,
    OverturnEvent,
)
EVENT_KINDS: frozenset[str] = frozenset(m.model_fields["kind"].default for m in EVENT_MODELS)

# cache_strings="keys": pydantic-core's JSON parser looks every string of 64 characters or fewer up in a cache of 16,384
# by default, values too; a room's ids and texts are mostly new strings, and the look-ups cost more than they save
# (section c's input: +2.5 % events/s against the default, +1.7 % with no cache at all; docs/performance-history.md)
event_adapter: TypeAdapter[Event] = TypeAdapter(Event, config=ConfigDict(cache_strings="keys"))


class _PerClass(dict[type, Any]):
    """A value per event class, computed on its first look-up. The hot helpers below ask it instead of
    ``isinstance``: a model class's ``isinstance`` goes through ``ABCMeta`` (pydantic's metaclass derives from
    it), ≈ 0.2 µs for each class that does not match, and a comment is asked this some ten times."""

    def __init__(self, of_class: Callable[[type], Any]) -> None:
        super().__init__()
        self._of_class = of_class

    def __missing__(self, cls: type) -> Any:
        value = self[cls] = self._of_class(cls)
        return value


def _text_field(cls: type) -> str | None:
    """The field holding an event class's free text, if it has one."""
    if issubclass(cls, (ChatEvent, DanmakuEvent, TranscriptEvent)):
        return "text"
    return "title" if issubclass(cls, PriceTagEvent) else None


_TEXT_FIELD = _PerClass(_text_field)
_IS_COMMENT = _PerClass(lambda cls: issubclass(cls, (ChatEvent, DanmakuEvent)))


def text_of(event: BaseEvent) -> str | None:
    """The free text an event carries, if any (chat/danmaku/transcript text, a product title)."""
    field = _TEXT_FIELD[type(event)]
    return None if field is None else event.__dict__[field]  # a declared field: in the instance's dict


def is_viewer_comment(event: BaseEvent) -> TypeGuard[ChatEvent | DanmakuEvent]:
    """A viewer's chat or danmaku: most of the input, and what the flood detectors read."""
    return _IS_COMMENT[type(event)] and event.__dict__["role"] == "viewer"  # type: ignore[no-any-return]


def user_of(event: BaseEvent) -> str | None:
    """The user an event comes from, if its kind has one. Read from the instance's fields: ``getattr`` with a
    default on a kind without the field goes through pydantic's ``__getattr__`` and an AttributeError,
    ≈ 3.7 µs — on every transcript, price tag and order."""
    user: str | None = event.__dict__.get("user_id")
    return user
