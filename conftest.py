# The generic session fixtures (PostgreSQL, Kafka, service processes, tenants) come from the dev
# package; the fixtures of our own services (orders, the saga) from tests/saga_stack.py, which
# the ini's `pythonpath = ["."]` makes importable as `tests.saga_stack`.
pytest_plugins = ["waybill.devstack.testing", "tests.saga_stack", "tests.shipping_stack"]
