"""Data loading with PyTorch's ``torch.utils.data`` names."""
