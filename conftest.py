pytest_plugins = ["waybill.common.testing"]
