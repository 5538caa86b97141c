"""QualityNet forward pass: shapes, bounded output, every backbone, input checks."""

from __future__ import annotations

import pytest
import torch

from qsaudit.errors import ModelError
from qsaudit.model.config import ModelConfig
from qsaudit.model.network import QualityNet


@pytest.mark.parametrize(("backbone", "feature"), [("resnet10", 32), ("resnet18", 32),
                                                   ("resnet34", 32), ("resnet50", 128)])
def test_forward_shapes_and_bounded_output(backbone, feature):
    torch.manual_seed(0)
    cfg = ModelConfig(backbone=backbone, width=4, input_size=32, embed_dim=8, hidden=6)
    net = QualityNet(cfg).eval()
    assert net.feature_dim == feature
    x = torch.randn(3, 2, 32, 32) * 3
    emb = torch.randn(3, 8)
    with torch.no_grad():
        y = net(x, emb)
    assert y.shape == (3,)
    assert torch.all((y >= 0) & (y <= 1))


def test_unbounded_head_can_leave_unit_interval_and_gradients_flow():
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet10", width=4, input_size=32, embed_dim=8, hidden=6,
                      bounded=False)
    net = QualityNet(cfg)
    with torch.no_grad():
        net.fc2.bias.fill_(5.0)
    x, emb = torch.randn(4, 2, 32, 32), torch.randn(4, 8)
    y = net(x, emb)
    assert torch.all(y > 1)
    y.sum().backward()
    assert net.conv1.weight.grad is not None and net.attention1.weight.grad is not None


def test_embedding_changes_the_prediction():
    torch.manual_seed(1)
    cfg = ModelConfig(backbone="resnet10", width=4, input_size=32, embed_dim=8, hidden=6)
    net = QualityNet(cfg).eval()
    x = torch.randn(1, 2, 32, 32).repeat(2, 1, 1, 1)
    with torch.no_grad():
        y = net(x, torch.randn(2, 8) * 5)
    assert not torch.isclose(y[0], y[1])


def test_bad_shapes_raise_model_error():
    cfg = ModelConfig(backbone="resnet10", width=4, input_size=32, embed_dim=8, hidden=6)
    net = QualityNet(cfg)
    with pytest.raises(ModelError, match="input"):
        net(torch.randn(2, 3, 32, 32), torch.randn(2, 8))
    with pytest.raises(ModelError, match="embeddings"):
        net(torch.randn(2, 2, 32, 32), torch.randn(2, 5))
