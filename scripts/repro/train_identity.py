#!/usr/bin/env python3
"""Train a TransformerNet to give back its input (pixel MSE, no VGG): the content-preserving
network a style run can start from (``init_from=``), as docs/results/2026-12-01-recipe.md measures.

    .venv/bin/python scripts/repro/train_identity.py --photos ../shared/data/photos/train \
        --output /tmp/identity_small.safetensors --channels 16 --residual 3

The same LightningModule and data module as ``nst mode=train``, with nst.perceptual.losses.PixelLoss in place
of the perceptual loss; the file is an ordinary nst model file (its metadata says what it is).
"""

from __future__ import annotations

import argparse
import time
import warnings

import pytorch_lightning as pl
import torch

from nst.models.modelfile import save_model
from nst.networks.transformer import TransformerNet
from nst.perceptual.losses import PixelLoss
from nst.training.data import PhotoDataModule
from nst.training.module import ImageToImageModule


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", required=True, help="folder or glob of training photos")
    ap.add_argument("--output", required=True, help="the .safetensors model file to write")
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--residual", type=int, default=3)
    ap.add_argument("--output-layer", default="sigmoid", choices=["sigmoid", "linear"])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--size", type=int, default=128, help="crop side")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pl.seed_everything(args.seed, verbose=False)
    net = TransformerNet(args.channels, args.residual, output=args.output_layer)
    data = PhotoDataModule(args.photos, crop_size=args.size, batch_size=args.batch, short_side=256,
                           scale=(0.67, 1.5))
    def sched(opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.1)

    module = ImageToImageModule(net, PixelLoss(), scheduler=sched, lr=args.lr)
    trainer = pl.Trainer(accelerator="cpu", max_steps=args.steps, logger=False, enable_checkpointing=False,
                         enable_model_summary=False, log_every_n_steps=50, enable_progress_bar=True)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        trainer.fit(module, datamodule=data)
    seconds = time.perf_counter() - start
    net.eval()
    with torch.no_grad():
        x = next(iter(data.train_dataloader()))["input"]
        mse = float(torch.nn.functional.mse_loss(net(x), x))
    save_model(args.output, net, {"style": [], "purpose": "identity: reproduces its input (pixel MSE)",
                                  "steps": args.steps, "data": str(args.photos), "crop": args.size,
                                  "batch_size": args.batch, "pixel_mse": mse, "seconds": round(seconds, 1)})
    print(f"identity network: {args.output} ({args.steps} steps, {seconds:.0f} s, pixel MSE {mse:.2e}, "
          f"PSNR {10 * torch.log10(torch.tensor(1.0 / max(mse, 1e-12))):.1f} dB)")


if __name__ == "__main__":
    main()
