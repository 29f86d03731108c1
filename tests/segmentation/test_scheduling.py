"""Ranks split the tomograms with no duplicates; lock files keep independent runs apart."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch.multiprocessing as mp

from ais_torch.segmentation.scheduling import OutputLock, Rank, detect_rank, lock_path, split_work


def test_rank_from_torchrun_or_slurm_env() -> None:
    assert detect_rank({"RANK": "1", "WORLD_SIZE": "4"}) == Rank(1, 4, "torchrun")
    assert detect_rank({"SLURM_PROCID": "2", "SLURM_NTASKS": "3"}) == Rank(2, 3, "SLURM")
    assert detect_rank({}) == Rank(0, 1, "single process")
    assert detect_rank({"RANK": "5", "WORLD_SIZE": "2"}) == Rank()  # nonsense: ignored


def test_split_covers_every_item_once() -> None:
    items = [f"t{i}" for i in range(11)]
    shares = [split_work(items, Rank(r, 3)) for r in range(3)]
    assert sorted(x for s in shares for x in s) == sorted(items)
    assert [len(s) for s in shares] == [4, 4, 3]


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    out = tmp_path / "a__M.mrc"
    first, second = OutputLock(out), OutputLock(out)
    assert first.acquire()
    assert lock_path(out).read_text().split()[0] == str(os.getpid())
    assert not second.acquire()  # held by a live process
    first.release()
    assert not lock_path(out).exists()
    assert second.acquire()
    second.release()


def _worker(rank: int, world: int, init: str, model: str, data: str, out: str, log: str) -> None:
    import torch.distributed as dist

    from ais_torch.segmentation.batch import segment

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        # locks off: the split alone must keep the two ranks apart
        report = segment(model, data, out, locks=False, progress=False, verbose=False)
        Path(log, f"rank{rank}.json").write_text(json.dumps([p.name for p in report.written]))
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_split_the_tomograms(
    tmp_path: Path, tomo_dir: Path, tiny_scnm: Path
) -> None:
    for i in range(3, 5):  # five tomograms
        (tomo_dir / f"t{i}.mrc").write_bytes((tomo_dir / "t0.mrc").read_bytes())
    out, log = tmp_path / "seg", tmp_path / "log"
    log.mkdir()
    init = f"file://{tmp_path / 'rendezvous'}"
    args = (2, init, str(tiny_scnm), str(tomo_dir), str(out), str(log))
    mp.spawn(_worker, args=args, nprocs=2, join=True)
    written = [json.loads((log / f"rank{r}.json").read_text()) for r in range(2)]
    assert not set(written[0]) & set(written[1])
    assert sorted(written[0] + written[1]) == [f"t{i}__Tiny.mrc" for i in range(5)]
    assert sorted(p.name for p in out.iterdir()) == [f"t{i}__Tiny.mrc" for i in range(5)]
