"""Layer outputs read as a grid over the image: conv maps, channels-last maps and transformer tokens,
the default layer each model gets, and Grad-CAM through the grid view."""

import pytest
import torch
from torchvision.models.vision_transformer import VisionTransformer

from reportgen.errors import InputError
from reportgen.explain.attribution import make_method
from reportgen.explain.heads import ExplainedModel, choose_head, choose_output
from reportgen.explain.layer_grid import GridLayout, grid_layout
from reportgen.inputs.model import describe_layers, pick_layer


def test_grid_layouts_from_shapes():
    assert grid_layout((512, 7, 7), (224, 224)) == GridLayout("conv", 7, 7)
    assert grid_layout((7, 7, 768), (224, 224)) == GridLayout("channels-last", 7, 7)
    # both readings fit: a layer that works on the last dimension is channels-last, anything else conv
    assert grid_layout((56, 56, 96), (224, 224), feature_last=True).kind == "channels-last"
    assert grid_layout((64, 64, 64), (256, 256)).kind == "conv"
    # tokens: the patch embedding's grid decides, and the rest are prefix tokens
    assert grid_layout((197, 768), (224, 224), (14, 14)) == GridLayout("tokens", 14, 14, 1)
    assert grid_layout((198, 192), (224, 224), (14, 14)) == GridLayout("tokens", 14, 14, 2)
    assert grid_layout((16 * 12 + 5, 64), (128, 96), (16, 12)) == GridLayout("tokens", 16, 12, 5)
    # no patch embedding seen: a patch size that divides the input (never a fixed 14 x 14)
    assert grid_layout((65, 32), (64, 64)) == GridLayout("tokens", 8, 8, 1)
    assert grid_layout((1000,), (224, 224)) is None
    assert grid_layout((768, 1, 1), (224, 224)) is None


def _small_vit(image_size: int = 64, patch_size: int = 8) -> torch.nn.Module:
    torch.manual_seed(0)
    model = VisionTransformer(image_size=image_size, patch_size=patch_size, num_layers=2, num_heads=2,
                              hidden_dim=32, mlp_dim=64, num_classes=3).eval()
    torch.nn.init.normal_(model.heads.head.weight, std=0.5)  # torchvision starts it at zero
    return model


def test_a_vision_transformer_defaults_to_the_last_blocks_input_norm():
    model = _small_vit()
    layers = describe_layers(model, (64, 64))
    layer = pick_layer(layers, None)
    assert layer.name == "encoder.layers.encoder_layer_1.ln_1"
    assert layer.layout == GridLayout("tokens", 8, 8, 1)
    # the last block's output reaches the head only through the class token: refused with the way out
    by_name = {info.name: info for info in layers}
    assert by_name["encoder.layers.encoder_layer_1"].gradient is False
    with pytest.raises(InputError, match="does not depend on the positions.*--layer encoder.layers.encoder_layer_1.ln_1"):
        pick_layer(layers, "encoder.layers.encoder_layer_1")


def test_a_zero_initialised_head_still_gives_the_structural_default():
    model = _small_vit()
    torch.nn.init.zeros_(model.heads.head.weight)
    assert pick_layer(describe_layers(model, (64, 64)), None).name == "encoder.layers.encoder_layer_1.ln_1"


@pytest.mark.parametrize("method", ["gradcam", "hirescam"])
def test_cam_of_a_token_layer_is_a_map_over_the_patch_grid(method):
    model = _small_vit()
    layer = pick_layer(describe_layers(model, (64, 64)), None)
    explained = ExplainedModel(model, choose_output(torch.zeros(1, 3)), choose_head(None, 3))
    module = dict(model.named_modules())[layer.name]
    torch.manual_seed(1)
    inputs = torch.randn(2, 3, 64, 64)
    maps = make_method(method, explained, module, layout=layer.layout).attribute(inputs, torch.tensor([0, 2])).maps
    assert maps.shape == (2, 64, 64)
    assert (maps >= 0).all() and (maps.flatten(1).sum(1) > 0).all()
    # The hook that reshapes the tokens is gone afterwards: the model runs as before.
    assert not module._forward_hooks


def test_cam_follows_a_planted_patch_through_the_tokens():
    """A model that scores one patch's tokens only: its Grad-CAM map is highest on that patch."""

    class OnePatch(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Conv2d(3, 4, 8, stride=8)
            self.norm = torch.nn.LayerNorm(4)
            self.head = torch.nn.Linear(4, 2)

        def forward(self, x):
            tokens = self.embed(x).flatten(2).transpose(1, 2)  # (B, 16, 4): a 4 x 4 grid
            tokens = torch.cat([torch.zeros_like(tokens[:, :1]), tokens], 1)  # a class token in front
            tokens = self.norm(tokens)
            return self.head(tokens[:, 1 + 6])  # the patch at row 1, column 2

    torch.manual_seed(0)
    model = OnePatch().eval()
    layers = describe_layers(model, (32, 32))
    layer = pick_layer(layers, "norm")
    assert layer.layout == GridLayout("tokens", 4, 4, 1)
    explained = ExplainedModel(model, choose_output(torch.zeros(1, 2)), choose_head(None, 2))
    inputs = torch.randn(4, 3, 32, 32)
    scores = explained(inputs)
    maps = make_method("hirescam", explained, model.norm, layout=layer.layout).attribute(
        inputs, scores.argmax(1)).maps
    lit = [image.reshape(4, 8, 4, 8).sum((1, 3)) for image in maps if image.sum() > 0]
    assert lit, "no image had evidence for its predicted class"
    for cells in lit:
        assert int(cells.argmax()) == 6
        # (bilinear upsampling of the 4 x 4 grid spreads some of it into the neighbouring cells)
        assert float(cells.flatten()[6]) > 0.4 * float(cells.sum())


def test_swin_style_channels_last_outputs_are_permuted():
    class ChannelsLast(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Conv2d(3, 8, 4, stride=4)
            self.norm = torch.nn.LayerNorm(8)
            self.head = torch.nn.Linear(8, 2)

        def forward(self, x):
            features = self.norm(self.embed(x).permute(0, 2, 3, 1))  # (B, 8, 8, C)
            return self.head(features.mean((1, 2)))

    torch.manual_seed(0)
    model = ChannelsLast().eval()
    layer = pick_layer(describe_layers(model, (32, 32)), None)
    assert layer.name == "norm" and layer.layout == GridLayout("channels-last", 8, 8)
    explained = ExplainedModel(model, choose_output(torch.zeros(1, 2)), choose_head(None, 2))
    maps = make_method("gradcam", explained, model.norm, layout=layer.layout).attribute(
        torch.randn(2, 3, 32, 32), torch.tensor([0, 1])).maps
    assert maps.shape == (2, 32, 32)


def test_a_grayscale_model_is_described_on_one_channel():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    layer = pick_layer(describe_layers(model, (48, 48), channels=1), None)
    assert layer.output_shape == (4, 48, 48)
    with pytest.raises(InputError, match="fails on a 48x48 RGB input"):
        describe_layers(model, (48, 48), channels=3)
