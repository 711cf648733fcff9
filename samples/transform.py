"""Evaluation transform of the planted-cue models (the same as sample_transform() in the synthetic module).

No import but torchvision: the MAI-BIAS toolkit runs transform files only when every name they mention is
an allowed library."""

from torchvision import transforms

transform = transforms.Compose([
    transforms.Resize((128, 128)),
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
])
