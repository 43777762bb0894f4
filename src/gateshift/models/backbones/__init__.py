"""2D backbones written in this repository (no torchvision), each with its input spec."""
