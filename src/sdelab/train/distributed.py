"""Several processes training one cell together (`accelerate launch`, `torchrun`: data parallel): which process
is the main one, and how the others follow its decisions.

Every process reads the study and trains each cell (each on its share of every batch, train/memory.chunked);
only the main process claims cells, writes the run folder and evaluates, while the others wait for its next
decision. Without a launcher (one process) every function here is a no-op.
"""
from __future__ import annotations

import os
from datetime import timedelta

import torch

from sdelab.fileio import is_main_process

# how long the other processes wait for the main one (it evaluates a cell alone; that can take hours on a CPU)
WAIT = timedelta(hours=24)


def world() -> int:
    """The number of processes of the launch (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", 1))


def is_main() -> bool:
    """The process that writes: global rank 0 (a single process always is)."""
    return is_main_process()


def start(device: torch.device) -> None:
    """Join the launch's process group (gloo on CPU, nccl on CUDA), with a wait long enough for an evaluation."""
    if world() > 1:
        from accelerate import PartialState
        PartialState(cpu=device.type == "cpu", timeout=WAIT)


def share(value):
    """The main process's `value`, on every process (a decision: run this cell, skip it)."""
    if world() == 1:
        return value
    from accelerate.utils import broadcast_object_list
    return broadcast_object_list([value], from_process=0)[0]


def wait() -> None:
    """Every process reaches this point before any goes on."""
    if world() > 1:
        from accelerate import PartialState
        PartialState().wait_for_everyone()


def total(values: list[float], device: torch.device) -> list[float]:
    """The sum over processes of each of `values` (a step's loss and token counts), reduced on `device` (the
    process group's: gloo reduces CPU tensors, nccl CUDA ones)."""
    if world() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()
