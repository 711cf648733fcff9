"""The architectures people audit, as a new user would try them: torchvision's and timm's models with random
weights (pretrained=False) on tutorial-shaped inputs. Each run must finish, score every image and say which
head, output and layer it used (issue 12). Models of up to 86M parameters: marked heavy, so CI runs them
(``--heavy``) and the default run does not."""

from __future__ import annotations

import pytest
import torch

import reportgen

pytestmark = pytest.mark.heavy

# (name, model file source, the default layer reportgen must choose, its layout)
ZOO = [
    ("mobilenet_v3_small", "from torchvision.models import mobilenet_v3_small\n"
                           "model = mobilenet_v3_small(weights=None, num_classes=2)\n", "features", "conv"),
    ("efficientnet_b0", "from torchvision.models import efficientnet_b0\n"
                        "model = efficientnet_b0(weights=None, num_classes=2)\n", "features", "conv"),
    ("convnext_tiny", "from torchvision.models import convnext_tiny\n"
                      "model = convnext_tiny(weights=None, num_classes=2)\n", "features", "conv"),
    ("swin_t", "from torchvision.models import swin_t\nmodel = swin_t(weights=None, num_classes=2)\n",
     "permute", "conv"),
    ("vit_b_16", "from torchvision.models import vit_b_16\nmodel = vit_b_16(weights=None, num_classes=2)\n",
     "encoder.layers.encoder_layer_11.ln_1", "tokens"),
    ("timm_deit_tiny_distilled", "import timm\nmodel = timm.create_model('deit_tiny_distilled_patch16_224', "
                                 "pretrained=False, num_classes=2)\n", "blocks.11.norm1", "tokens"),
]
TRANSFORM = """\
import torchvision.transforms as T
transform = T.Compose([T.Resize((224, 224)), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
"""


@pytest.mark.parametrize("name, source, layer, layout", ZOO, ids=[entry[0] for entry in ZOO])
def test_zoo_model_runs_scores_every_image_and_says_what_it_did(tutorial_like, tmp_path, name, source, layer, layout):
    model_file = tmp_path / f"{name}.py"
    model_file.write_text(source)
    namespace: dict = {}
    exec(source, namespace)
    model = namespace["model"]
    torch.manual_seed(0)
    for module in model.modules():
        # torchvision's ViT starts its classifier at zero (fine-tuning does the rest): with "random weights" as
        # a user means them, every output would then be 0 and nothing could be explained.
        if isinstance(module, torch.nn.Linear) and module.out_features == 2 and not module.weight.abs().sum():
            torch.nn.init.normal_(module.weight, std=0.05)
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    (tmp_path / "transform.py").write_text(TRANSFORM)
    results = reportgen.analyze(images=tutorial_like["images"], annotations=tutorial_like["annotations"],
                                target="task", protected=["protected"], model_file=model_file,
                                weights=tmp_path / "weights.pt", transform=tmp_path / "transform.py",
                                check_images=2, bootstrap=0, batch_size=6, workers=0, cache_dir=tmp_path / "cache")
    counts, run = results["counts"], results["run"]
    assert counts["failed"] == 0 and counts["scored"] == counts["images"] == 6, results["failures"]
    assert (run["head"], run["head_source"], run["classes"]) == ("softmax", "automatic", 2)
    assert run["output"] == "the model's output"
    assert (run["layer"], run["layer_source"], run["layer_layout"]) == (layer, "default", layout)
    assert run["layer_grid"] == [14, 14] if layout == "tokens" else run["layer_grid"] == [7, 7]
    assert results["regions"][0]["density"] is not None
