import pytest

# The bad-input tests' shared checks live in a plain module: have pytest rewrite its asserts,
# as it does a test module's, so a failing check reports the values it compared.
pytest.register_assert_rewrite("tests.web.bad_input")
