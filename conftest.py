# The generic session fixtures (PostgreSQL, Kafka, service processes, tenants) come from the dev
# package; the fixtures of our own services (orders and the saga, shipping, the notifier, the
# monitor) from tests/saga_stack.py, shipping_stack.py, notifier_stack.py, messaging_stack.py
# and monitor_stack.py, which the ini's `pythonpath = ["."]` makes importable as `tests.saga_stack`.
pytest_plugins = [
    "waybill.devstack.testing",
    "tests.saga_stack",
    "tests.shipping_stack",
    "tests.messaging_stack",  # before notifier_stack, which imports it
    "tests.notifier_stack",
    "tests.monitor_stack",
    "tests.up_stack",
]
