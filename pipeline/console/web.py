"""The console's web application (Flask, server-rendered Jinja pages, a few lines of script for the live count).

Every page needs a login; a session expires after ``session_minutes``; every form carries a CSRF token
(Flask-WTF); viewers read, reviewers decide findings, leads also decide appeals and read the audit log.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from flask import Flask, abort, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFProtect
from pydantic import ValidationError

from pipeline.console.decisions import DecisionError, DecisionSink, decide_appeal, decide_finding
from pipeline.console.store import REVIEW_STATES, SEVERITY_RANK, QueueFilter, Store, now_ms
from pipeline.console.users import check_login, may
from pipeline.console.views import clock, highlight, spans_of, timeline
from schemas.reviews import DISMISS_REASONS

F = TypeVar("F", bound=Callable[..., Any])
#: the queue's age filter: label → minutes before the newest finding (event time)
AGES = {"": "any age", "15": "15 min", "60": "1 h", "360": "6 h", "1440": "24 h", "10080": "7 days"}
PAGE = 50
#: the room context of a finding: this many ms either side of it
CONTEXT_MS = 30_000


def create_app(store: Store, sink: DecisionSink, session_minutes: int = 60, source: str = "") -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=store.secret("session_key"),  # kept in the store: sessions survive a restart
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=session_minutes),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session, which expires on its own
    )
    CSRFProtect(app)
    app.jinja_env.filters["clock"] = clock
    app.jinja_env.globals.update(may=may, source=source)

    def login_required(right: str = "view") -> Callable[[F], F]:
        def wrap(view: F) -> F:
            @functools.wraps(view)
            def inner(*args: Any, **kwargs: Any) -> Any:
                name = session.get("user")
                started = session.get("since", 0)
                user = store.user(name) if name else None
                if user is None or now_ms() - started > session_minutes * 60_000:
                    session.clear()
                    return redirect(url_for("login", next=request.full_path))
                g.user = {"username": user["username"], "role": user["role"]}  # the role as it is now
                if not may(user["role"], right):
                    abort(403)
                return view(*args, **kwargs)

            return inner  # type: ignore[return-value]

        return wrap

    @app.get("/login")
    def login() -> Any:
        return render_template("login.html")

    @app.post("/login")
    def login_post() -> Any:
        user = check_login(store, request.form.get("username", ""), request.form.get("password", ""))
        if user is None:
            flash("Wrong user name or password.")
            return render_template("login.html"), 401
        session.clear()
        session.permanent = True
        session["user"], session["since"] = user["username"], now_ms()
        store.audit(user["username"], "login", user["username"], {})
        target = request.args.get("next", "")
        return redirect(target if target.startswith("/") and not target.startswith("//") else url_for("queue"))

    @app.post("/logout")
    def logout() -> Any:
        session.clear()
        return redirect(url_for("login"))

    def queue_filter() -> QueueFilter:
        a = request.args
        age = a.get("age", "")
        state = a.get("state", "open")
        return QueueFilter(
            severity=a.get("severity", "") if a.get("severity", "") in SEVERITY_RANK else "",
            rule=a.get("rule", ""),
            room=a.get("room", ""),
            max_age_min=int(age) if age in AGES and age else 0,
            state=state if state in (*REVIEW_STATES, "all", "open") else "open",
            include_shadow=a.get("shadow") == "1",
        )

    @app.get("/")
    @login_required()
    def queue() -> Any:
        flt = queue_filter()
        page = max(1, request.args.get("page", 1, type=int) or 1)
        rows = store.queue(flt, limit=PAGE, offset=(page - 1) * PAGE)
        return render_template(
            "queue.html",
            rows=rows,
            total=store.count(flt),
            flt=flt,
            page=page,
            page_size=PAGE,
            choices=store.choices(),
            severities=list(SEVERITY_RANK),
            ages=AGES,
            states=("open", *REVIEW_STATES, "all"),
            args={k: v for k, v in request.args.items() if k != "page"},
        )

    @app.get("/api/count")
    @login_required()
    def live_count() -> Any:
        return jsonify(count=store.count(queue_filter()))

    @app.get("/finding/<finding_id>")
    @login_required()
    def finding(finding_id: str) -> Any:
        found = store.finding(finding_id)
        if found is None:
            abort(404)
        f, state = found
        texts = []
        for event_id in f.event_ids:
            event = store.event(event_id)
            spans = [(e.start, e.end) for e in f.evidence if e.event_id == event_id and e.field in ("text", "title")]
            if event and event["text"]:
                texts.append({"event": event, "segments": highlight(event["text"], spans)})
        reading = f.details.get("model_reading")
        model = None
        if isinstance(reading, dict):
            unit = str(reading.get("unit", ""))
            deciding = [d for d in reading.get("deciding", []) if isinstance(d, dict)]
            model = {
                "score": reading.get("score"),
                "unit": highlight(unit, spans_of(unit, [str(d.get("text", "")) for d in deciding])),
                "deciding": deciding,
                "version": f.details.get("model"),
            }
        context = store.room_events(f.room_id, f.ts - CONTEXT_MS, f.ts + CONTEXT_MS)
        actions = store.actions_for_finding(finding_id)
        return render_template(
            "finding.html",
            f=f,
            state=state,
            texts=texts,
            model=model,
            context=context,
            highlight_ids=set(f.event_ids),
            details=json.dumps(f.details, ensure_ascii=False, indent=2),
            reviews=store.reviews_of(finding_id),
            actions=actions,
            appeals={a.appeal_ref: store.appeal_decision(a.appeal_ref) for a in actions},
            reasons=DISMISS_REASONS,
        )

    @app.post("/finding/<finding_id>/decide")
    @login_required("decide")
    def decide(finding_id: str) -> Any:
        decision = request.form.get("decision", "")
        if decision not in ("confirm", "dismiss", "escalate"):
            abort(400)
        try:
            decide_finding(
                store,
                sink,
                finding_id,
                decision,
                request.form.get("reason") or None,
                request.form.get("note", "").strip(),
                g.user["username"],
            )
        except (DecisionError, ValidationError) as e:
            flash(f"Not recorded: {_first_line(e)}")
            return redirect(url_for("finding", finding_id=finding_id))
        flash(f"Recorded: {decision} on finding {finding_id[:8]}.")
        return redirect(request.form.get("back") or url_for("queue"))

    @app.get("/room/<room_id>")
    @login_required()
    def room(room_id: str) -> Any:
        fs = store.room_findings(room_id)
        acts = store.actions_where(room_id=room_id)
        plot = timeline(
            store.events_per_minute(room_id),
            fs,
            [{"ts": a.ts, "action": a.action, "action_id": a.action_id} for a in acts],
        )
        return render_template("room.html", room_id=room_id, findings=fs, actions=acts, plot=plot)

    @app.get("/account/<subject_id>")
    @login_required()
    def account(subject_id: str) -> Any:
        return render_template(
            "account.html",
            subject_id=subject_id,
            findings=store.account_findings(subject_id),
            actions=store.actions_where(subject_id=subject_id),
        )

    @app.get("/appeals")
    @login_required()
    def appeals() -> Any:
        ref = request.args.get("ref", "").strip().upper()
        if ref:
            return redirect(url_for("appeal", appeal_ref=ref))
        return render_template("appeals.html", decided=store.appeal_decisions())

    @app.get("/appeal/<appeal_ref>")
    @login_required()
    def appeal(appeal_ref: str) -> Any:
        action = store.action_by_appeal(appeal_ref)
        if action is None:
            flash(f"No action carries the appeal reference {appeal_ref}.")
            return redirect(url_for("appeals"))
        found = [store.finding(fid) for fid in action.reasons]
        return render_template(
            "appeal.html",
            action=action,
            decision=store.appeal_decision(appeal_ref),
            findings=[f for f, _ in filter(None, found)],
        )

    @app.post("/appeal/<appeal_ref>/decide")
    @login_required("appeal")
    def appeal_decide(appeal_ref: str) -> Any:
        decision = request.form.get("decision", "")
        if decision not in ("uphold", "overturn"):
            abort(400)
        try:
            _, revoke = decide_appeal(
                store, sink, appeal_ref, decision, request.form.get("note", "").strip(), g.user["username"]
            )
        except (DecisionError, ValidationError) as e:
            flash(f"Not recorded: {_first_line(e)}")
        else:
            published = f"; revoke action {revoke.action_id} published" if revoke else ""
            flash(f"Appeal {appeal_ref}: {decision}{published}")
        return redirect(url_for("appeal", appeal_ref=appeal_ref))

    @app.get("/audit")
    @login_required("audit")
    def audit_log() -> Any:
        return render_template("audit.html", rows=store.audit_log())

    return app


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__
