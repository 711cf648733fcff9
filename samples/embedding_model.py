"""The verification demo's embedding model: a 16-d embedding trained to tell the two people of the
sample images apart by cosine similarity. Weights: embedding_weights.pt. Grad-CAM layer: conv4.

Self-contained (torch only, the same modules as SmallFaceNet in reportgen's synthetic module): the MAI-BIAS
toolkit loads a model file only when it imports nothing but allowed libraries."""

import torch
from torch import nn


def _block(in_channels, out_channels, kernel, stride, padding):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


class SampleEmbedding(nn.Module):
    """(N, 3, 128, 128) in [-1, 1] -> (N, 16) embedding; max over space after conv4."""

    def __init__(self):
        super().__init__()
        self.conv1 = _block(3, 16, 4, 2, 1)
        self.conv2 = _block(16, 32, 4, 2, 1)
        self.conv3 = _block(32, 64, 1, 1, 0)
        self.conv4 = _block(64, 64, 1, 1, 0)
        self.classifier = nn.Linear(64, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv4(self.conv3(self.conv2(self.conv1(x))))
        return self.classifier(x.amax(dim=(2, 3)))


model = SampleEmbedding()
