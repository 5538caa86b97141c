"""Our residual blocks compute exactly what torchvision's do with the same weights (the paper's
released ResNet-50 checkpoint loads into them)."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize("kind", ["basic", "bottleneck"])
@pytest.mark.parametrize("stride", [1, 2])
def test_blocks_match_torchvision(kind, stride):
    from torch import nn
    from torchvision.models import resnet as tv

    from qsaudit.model import network as ours

    torch.manual_seed(stride)
    expansion = 1 if kind == "basic" else 4
    inplanes, planes = 8, 6
    downsample = None
    if stride != 1 or inplanes != planes * expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * expansion, 1, stride=stride, bias=False),
            nn.BatchNorm2d(planes * expansion))
    theirs_cls = tv.BasicBlock if kind == "basic" else tv.Bottleneck
    ours_cls = ours.BasicBlock if kind == "basic" else ours.Bottleneck
    theirs = theirs_cls(inplanes, planes, stride, downsample)
    for module in theirs.modules():  # non-trivial batch-norm statistics
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    mine = ours_cls(inplanes, planes, stride,
                    None if downsample is None else type(downsample)(*downsample))
    mine.load_state_dict(theirs.state_dict(), strict=True)
    assert list(mine.state_dict()) == list(theirs.state_dict())
    x = torch.randn(2, inplanes, 12, 12)
    theirs.eval()
    mine.eval()
    with torch.no_grad():
        torch.testing.assert_close(mine(x), theirs(x), rtol=0, atol=0)


@pytest.mark.parametrize("backbone", ["resnet10", "resnet50"])
def test_folded_batch_norm_gives_the_same_outputs(backbone):
    from torch import nn

    from qsaudit.model.config import ModelConfig
    from qsaudit.model.network import QualityNet, fold_batch_norm

    torch.manual_seed(0)
    model = QualityNet(ModelConfig(backbone=backbone, width=8, input_size=32, hidden=16,
                                   embed_dim=8))
    for module in model.modules():  # trained-looking statistics
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.3, 0.3)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    folded = fold_batch_norm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is kept
    x, e = torch.randn(3, 2, 32, 32), torch.randn(3, 8)
    with torch.no_grad():
        torch.testing.assert_close(folded(x, e), model(x, e), rtol=1e-5, atol=1e-6)
