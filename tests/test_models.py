import pytest
import torch

from nmnc.engine.taps import inject, record
from nmnc.errors import UnknownNameError
from nmnc.models import MODELS, build_model


@pytest.mark.parametrize(
    "name,size,n_hidden",
    [("cnn", 32, 4), ("resnet", 32, 20), ("resnet18", 224, 20), ("alexnet", 224, 7)],
)
def test_models_forward_and_expose_layers(name, size, n_hidden):
    torch.manual_seed(0)
    model = build_model(name, width=0.25, num_classes=7).eval()
    x = torch.randn(2, 3, size, size)
    assert model(x).shape == (2, 7)
    assert len(model.hidden_layers) == n_hidden
    with record(model, model.hidden_layers) as acts, torch.no_grad():
        y = model(x)
    assert list(acts) == model.hidden_layers
    shapes = model.layer_shapes()
    for layer in model.hidden_layers:
        assert tuple(acts[layer].shape[1:]) == shapes[layer]
        # the network above a layer, fed that layer's activity, gives the same logits (stages
        # above it that read lower layers through skip connections take them from context)
        assert torch.allclose(model.forward_from(layer, acts[layer], acts), y, atol=1e-5)


def test_width_scales_channels():
    small, big = build_model("cnn", width=0.5), build_model("cnn", width=2)
    assert small.layer_shapes()["conv1"][0] == 8 and big.layer_shapes()["conv4"][0] == 256
    assert sum(p.numel() for p in big.parameters()) > 10 * sum(
        p.numel() for p in small.parameters()
    )


def test_unknown_names_list_choices():
    with pytest.raises(
        UnknownNameError, match="did you mean 'resnet'.*alexnet, cnn, gru, resnet, resnet18, rnn"
    ):
        build_model("resnt")
    with pytest.raises(UnknownNameError, match="did you mean 'width'"):
        build_model("cnn", widht=2)
    model = build_model("cnn")
    with pytest.raises(UnknownNameError, match="unknown layer 'conv9'.*conv1, conv2, conv3, conv4"):
        with record(model, ["conv9"]):
            pass


def test_inject_replaces_layer_output():
    model = build_model("cnn").eval()
    x = torch.randn(3, 3, 32, 32)
    with inject(model, {"conv4": torch.zeros_like}), torch.no_grad():
        y = model(x)
    # with conv4 silenced, the logits are the read-out's bias for every image
    assert torch.allclose(y, model.fc[1].bias.expand(3, -1))


def test_registry_lists_models():
    assert MODELS.names() == ["alexnet", "cnn", "gru", "resnet", "resnet18", "rnn"]
    assert MODELS.names("res*") == ["resnet", "resnet18"]
    assert MODELS.names(kind="") == ["alexnet", "cnn", "resnet", "resnet18"]
    assert MODELS.names(kind="recurrent") == ["gru", "rnn"]
