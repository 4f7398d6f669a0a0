"""A tiny regression task that exercises the generic training engine in a second or two.

Used by the engine tests (resume, DDP) so that they check the engine itself, independent of any model
family: a 2-layer MLP on a fixed random linear problem, MSE averaged over the global batch.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from zoo.core.distributed import DistInfo, all_reduce_sum
from zoo.tasks.base.recipe import TrainConfig
from zoo.tasks.base.training import StepContext, Task


class ToyTask(Task):
    name = "toy-regression"
    loss_names = ("mse",)

    def __init__(self, config: TrainConfig, *, dropout: float = 0.0, n: int = 40) -> None:
        super().__init__(config)
        self.dropout = dropout
        self.n = n

    def setup(self, dist: DistInfo) -> None:
        g = torch.Generator().manual_seed(1234)  # the data does not depend on the run's seed
        x = torch.randn(self.n + 16, 4, generator=g)
        y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(self.n + 16, 1, generator=g)
        self.train_set = TensorDataset(x[: self.n], y[: self.n])
        self.val = (x[self.n:], y[self.n:])

    def build_model(self) -> nn.Module:
        layers: list[nn.Module] = [nn.Linear(4, 16), nn.Tanh()]
        if self.dropout:
            layers.append(nn.Dropout(self.dropout))
        return nn.Sequential(*layers, nn.Linear(16, 1))

    def train_dataset(self) -> Dataset:
        return self.train_set

    def example_input(self, device: torch.device) -> torch.Tensor:
        return torch.zeros(1, 4, device=device)

    def training_step(self, model, batch, ctx: StepContext):
        x, y = (t.to(ctx.device) for t in batch)
        with ctx.autocast():
            err = (model(x).float() - y) ** 2
        # mean over the *global* batch: local sum / global count, times world size (DDP averages)
        count = all_reduce_sum(torch.tensor(float(x.shape[0]), device=ctx.device))
        loss = err.sum() / count * ctx.dist.world_size / ctx.accumulate
        return loss, err.mean().detach().view(1)

    def validate(self, model, ctx: StepContext) -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            x, y = (t.to(ctx.device) for t in self.val)
            mse = float(((model(x) - y) ** 2).mean())
        return {"val/mse": mse}

    def fitness(self, metrics: dict[str, float]) -> float:
        return -metrics["val/mse"]

    def save_weights(self, model: nn.Module, path: Path, *, metrics) -> None:
        from safetensors.torch import save_file

        from zoo.core.fileio import atomic_path

        with atomic_path(path) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))


def toy_config(**kw) -> TrainConfig:
    base = dict(model="toy", epochs=3, batch=8, workers=0, optimizer="SGD", lr0=0.05, warmup_epochs=1.0,
                warmup_steps=0, nbs=0, ema=True, ema_tau=5.0, device="cpu", save_every_steps=1, plots=False)
    base.update(kw)
    return TrainConfig(**base)
