"""The shipped offline tokenizer: loads with no network, covers any text, rebuilds the same."""

import importlib.util
import json

from transformers import AutoTokenizer

from embodied_mm.model.pretrained import shipped_tokenizer_dir


def test_loads_offline_with_special_tokens(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = AutoTokenizer.from_pretrained(str(shipped_tokenizer_dir()))
    assert tok.pad_token == "<|pad|>" and tok.bos_token == "<|bos|>" and tok.eos_token == "<|eos|>"
    assert len({tok.pad_token_id, tok.bos_token_id, tok.eos_token_id}) == 3


def test_task_words_are_short_and_unknown_words_still_round_trip():
    tok = AutoTokenizer.from_pretrained(str(shipped_tokenizer_dir()))
    task = "pick up the red cube and place it in the blue bin"
    ids = tok(task, add_special_tokens=False)["input_ids"]
    assert len(ids) <= len(task.split()) + 2  # task words are single tokens (mostly)
    for text in (task, "Zebra-xylophone 42 ünïcode!"):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids
        assert tok.decode(ids) == text


def test_build_script_reproduces_the_shipped_files(tmp_path):
    script = shipped_tokenizer_dir() / "build_tokenizer.py"
    spec = importlib.util.spec_from_file_location("build_tokenizer", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build(tmp_path)
    built = json.loads((tmp_path / "tokenizer.json").read_text())
    shipped = json.loads((shipped_tokenizer_dir() / "tokenizer.json").read_text())
    assert built["model"]["vocab"] == shipped["model"]["vocab"]
