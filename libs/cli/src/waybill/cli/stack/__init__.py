"""The local stack ``waybill up`` runs: the topology's services on the embedded (or external)
PostgreSQL and Kafka. ``lifecycle`` starts and stops them in order, ``supervisor`` restarts
a service that dies, ``state`` is the state dir and its ``up.json``, ``up`` the command."""
