"""Registry behaviour that holds whatever families are registered."""
from __future__ import annotations

import pytest
from torch import nn

import zoo
from zoo.core.errors import UnknownModelError
from zoo.core.registry import register_model


def test_duplicate_registration_is_an_error():
    @register_model("test-dup-model", family="test", task="detection", input_size=32)
    def _a() -> nn.Module:
        return nn.Identity()

    with pytest.raises(ValueError, match="already registered"):
        @register_model("test-dup-model", family="test", task="detection", input_size=32)
        def _b() -> nn.Module:
            return nn.Identity()


def test_unknown_name_suggests_closest_match():
    @register_model("test-widget-small", family="test", task="detection", input_size=32)
    def _c() -> nn.Module:
        return nn.Linear(2, 3)

    with pytest.raises(UnknownModelError, match="Did you mean 'test-widget-small'"):
        zoo.create_model("test-widget-smal")


def test_list_models_wildcards_sorted_naturally():
    for size in ("10", "2"):
        register_model(f"test-nat-{size}", family="test", task="detection", input_size=32)(lambda: nn.Identity())
    assert zoo.list_models("test-nat-*") == ["test-nat-2", "test-nat-10"]


def test_none_overrides_fall_through_to_defaults():
    @register_model("test-linear", family="test", task="detection", input_size=32)
    def _d(*, out_features: int = 7) -> nn.Module:
        return nn.Linear(2, out_features)

    assert zoo.create_model("test-linear", out_features=None).out_features == 7
    assert zoo.create_model("test-linear", out_features=5).out_features == 5
    assert zoo.model_info("test-linear").n_params == 2 * 7 + 7


def test_pretrained_missing_weights_says_where_to_put_them(tmp_path, monkeypatch):
    @register_model("test-weighted", family="test", task="detection", input_size=32, weights_file="W.pt")
    def _e() -> nn.Module:
        return nn.Identity()

    monkeypatch.setenv("EFFZOO_WEIGHTS", str(tmp_path))
    with pytest.raises(zoo.ZooError, match=f"put the released file 'W.pt' there.*{tmp_path.name}|{tmp_path.name}.*W.pt"):
        zoo.create_model("test-weighted", pretrained=True)


def test_checkpoint_of_another_variant_with_same_shapes_is_refused(tmp_path):
    """sm-g and sm-r have identical parameter shapes; the recorded model name must still be honoured."""
    from zoo.core.checkpoint import save_safetensors

    model = zoo.create_model("pi-gpt2-tiny-sm-g", vocab_size=64, context_length=16)
    path = save_safetensors(model, tmp_path / "g.safetensors", name="pi-gpt2-tiny-sm-g")
    with pytest.raises(zoo.ZooError, match="holds weights of 'pi-gpt2-tiny-sm-g'"):
        zoo.create_model("pi-gpt2-tiny-sm-r", checkpoint_path=path)
    again = zoo.create_model("pi-gpt2-tiny-sm-g", checkpoint_path=path)  # overrides come from the file
    assert again.config.vocab_size == 64 and again.config.context_length == 16


def test_medium_weights_load_into_large(tmp_path):
    """Large is the Medium network at 768: their weights are declared interchangeable."""
    from zoo.core.checkpoint import save_safetensors

    path = save_safetensors(zoo.create_model("leyolo-medium"), tmp_path / "m.safetensors")
    assert zoo.create_model("leyolo-large", checkpoint_path=path).num_classes == 80
