# One torch thread per test process, as in tests/model (see the fixture's docstring).
from tests.model.conftest import _one_torch_thread  # noqa: F401
