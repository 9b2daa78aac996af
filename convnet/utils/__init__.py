"""Utilities with PyTorch's ``torch.utils`` layout."""
