"""A user's weights file into a named architecture: safetensors and weights-only .pt (nested, DataParallel
prefix), and one line naming the first layer that does not fit; TorchScript files as models."""
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from jemkit.checkpoint import load_external
from jemkit.nets import build_net, load_torchscript, load_weights


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return build_net("torchvision:resnet18", 1, 10, stem="small")


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_safetensors_and_nested_prefixed_pt_load(resnet, tmp_path):
    save_file({k: v.contiguous() for k, v in resnet.state_dict().items()}, str(tmp_path / "w.safetensors"))
    assert _same_weights(load_weights(build_net("torchvision:resnet18", 1, 10, stem="small"), tmp_path / "w.safetensors"), resnet)
    nested = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in resnet.state_dict().items()}}
    torch.save(nested, tmp_path / "w.pt")
    assert _same_weights(load_weights(build_net("torchvision:resnet18", 1, 10, stem="small"), tmp_path / "w.pt"), resnet)


def test_wrong_class_count_names_the_head(resnet, tmp_path):
    torch.save(resnet.state_dict(), tmp_path / "W.pt")
    with pytest.raises(ValueError) as err:
        load_external("torchvision:resnet18", (1, 28, 28), weights=tmp_path / "W.pt", num_classes=5, stem="small")
    assert str(err.value) == ("W.pt does not fit torchvision:resnet18 with 5 classes and input 1x28x28, stem small: "
                              "fc.weight is (10, 512) in the file, (5, 512) in the model; try --num-classes 10")


def test_wrong_stem_and_channels_name_the_first_conv(resnet, tmp_path):
    torch.save(resnet.state_dict(), tmp_path / "W.pt")
    with pytest.raises(ValueError, match=r"^W.pt does not fit torchvision:resnet18 with 10 classes and input 3x32x32: "
                                         r"conv1.weight is \(64, 1, 3, 3\) in the file, \(64, 3, 7, 7\) in the model; "
                                         r"try --stem small / --input 1xHxW$"):
        load_external("torchvision:resnet18", (3, 32, 32), weights=tmp_path / "W.pt", num_classes=10)


def test_wrong_architecture_counts_the_keys(tmp_path):
    torch.save(build_net("torchvision:mobilenet_v3_small", 1, 10).state_dict(), tmp_path / "W.pt")
    with pytest.raises(ValueError, match=r"^W.pt does not fit torchvision:resnet18 .*: \d+ keys of the model are not in the "
                                         r"file \(first: conv1.weight\); \d+ keys in the file are not in the model "
                                         r"\(first: features.0.0.weight\); is it another architecture\?$"):
        load_external("torchvision:resnet18", (1, 28, 28), weights=tmp_path / "W.pt", num_classes=10, stem="small")


def test_pickled_module_and_other_files_are_refused(resnet, tmp_path):
    torch.save(nn.Linear(2, 2), tmp_path / "whole_module.pt")  # not a state_dict: weights_only refuses the pickle
    with pytest.raises(ValueError, match="whole_module.pt: refused"):
        load_weights(resnet, tmp_path / "whole_module.pt")
    torch.save({"lr": 0.1}, tmp_path / "opt.pt")
    with pytest.raises(ValueError, match="opt.pt is not a state_dict"):
        load_weights(resnet, tmp_path / "opt.pt")
    (tmp_path / "w.h5").write_bytes(b"x")
    with pytest.raises(ValueError, match="weights must be .safetensors or .pt"):
        load_weights(resnet, tmp_path / "w.h5")
    with pytest.raises(FileNotFoundError, match="nope.pt does not exist"):
        load_weights(resnet, tmp_path / "nope.pt")


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")  # users still have such files
def test_torchscript_file_is_a_model(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    torch.jit.script(net).save(str(tmp_path / "m.torchscript.pt"))
    model = load_external(tmp_path / "m.torchscript.pt", (1, 8, 8))
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    torch.testing.assert_close(model(x), net((x + 1) / 2))
    assert model.num_classes == 3 and model.record["source"].startswith("TorchScript ")
    with pytest.raises(ValueError, match="is a TorchScript file: its weights and stem are inside it"):
        load_external(tmp_path / "m.torchscript.pt", (1, 8, 8), weights=tmp_path / "w.pt")
    torch.save(net.state_dict(), tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="plain.pt is not a TorchScript file"):
        load_torchscript(tmp_path / "plain.pt")
