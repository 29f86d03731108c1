"""A plugin's own test: ais_torch's shared contract, run on our class."""

from tiny_arch.net import TinyNet

from ais_torch.archs.testing import check_arch


def test_tiny_net_meets_the_ais_torch_contract() -> None:
    check_arch(TinyNet)
