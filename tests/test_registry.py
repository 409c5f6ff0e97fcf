import pytest

from embodied_mm.registry import Registry, UnknownNameError


def test_unknown_name_lists_known_ones():
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)
    reg.register("b", 2)
    with pytest.raises(UnknownNameError, match="unknown widget 'c'; known: a, b"):
        reg.get("c")


def test_lazy_entry_is_imported_on_first_use():
    reg: Registry[object] = Registry("thing")
    reg.register("join", "os.path:join")
    import os.path

    assert reg.get("join") is os.path.join
    assert "join" in reg and reg.names() == ["join"]


def test_duplicate_registration_fails():
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", 2)
