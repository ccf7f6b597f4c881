import pytest

# The OpenAPI tests' shared contract lives in a plain module: have pytest rewrite its asserts,
# as it does a test module's, so a failing check reports the values it compared.
pytest.register_assert_rewrite("tests.platforms.openapi_contract")
