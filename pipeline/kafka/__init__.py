"""The Kafka runtime: the engine run by faust-streaming workers in one consumer group.

- ``topics``       topic declarations and message conventions; creating the topics
- ``recording``    ``livewatch publish`` / ``record``: recordings to and from the input topics
- ``worker``       the Faust wiring (agent, table, rebalance hooks) and ``run_worker``
- ``offsets``      per topic-partition offsets: in-order acknowledgements, gaps, duplicates, stalls (pure)
- ``merge``        event-time merge of a partition's input topics (pure)
- ``rebuild``      the rebuild coordinator: a partition opens once its sliding windows are rebuilt
- ``reader``       reads outside the consumer group: skipped offsets, a partition's decided history
- ``sender``       sends an event's outputs and waits for the broker's acks
- ``state_store``  room state: memory cache over the changelog-backed table

Import the modules themselves: importing this package loads neither Faust nor aiokafka.
See docs/kafka_runtime.md.
"""
