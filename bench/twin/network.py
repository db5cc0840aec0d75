"""PyTorch twin of MultiTaskNetwork (MODEL-SPEC §1) at the `Gpu448` size with BackboneKind.TinyViT, the task losses
(§8), MTFormer uncertainty weighting, and the training step of MultiTaskTrainingLoop (§11): bf16 module with fp32
master weights, AdamW, global-norm clipping - written the way a PyTorch user would (foreach AdamW, foreach clipping).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import modules

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IGNORE = 255.0

# name, kind, channels, loss weight (TaskSpec.cs defaults: Segmentation 1, Depth 1, Normals 10)
TASKS = {2: [("seg", "seg", 40, 1.0), ("depth", "depth", 1, 1.0)],
         3: [("seg", "seg", 40, 1.0), ("depth", "depth", 1, 1.0), ("normals", "normals", 3, 10.0)]}


def sine_cosine_2d(rows, cols, width):
    quarter = width // 4
    omega = 1.0 / torch.pow(10000.0, torch.arange(quarter, dtype=torch.float64) / quarter)
    r, c = torch.meshgrid(torch.arange(rows, dtype=torch.float64), torch.arange(cols, dtype=torch.float64), indexing="ij")
    r, c = r.reshape(-1, 1) * omega, c.reshape(-1, 1) * omega
    return torch.cat([c.sin(), c.cos(), r.sin(), r.cos()], 1).float()      # (rows·cols)×d, row-major


class Block(nn.Module):
    """TransformerBlock.cs: pre-norm, global attention, MLP 4d with GELU."""

    def __init__(self, width, heads, mlp_ratio=4):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = modules.MultiHeadAttention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width * mlp_ratio)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(width * mlp_ratio, width)

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h)
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


def stack(depth, width, heads):
    return nn.Sequential(*[Block(width, heads) for _ in range(depth)]) if depth else nn.Identity()


class Backbone(nn.Module):
    def __init__(self, width, heads, stride, depth, rows, cols):
        super().__init__()
        self.stem = nn.Conv2d(3, width, stride, stride=stride)
        self.register_buffer("positions", sine_cosine_2d(rows, cols, width))
        self.blocks = stack(depth, width, heads)
        self.norm = nn.LayerNorm(width)

    def forward(self, image):
        tokens = self.stem(image).flatten(2).transpose(1, 2) + self.positions
        return self.norm(self.blocks(tokens))


class DenseHead(nn.Module):
    def __init__(self, kind, channels, width, rows, cols, height, img_width):
        super().__init__()
        self.rows, self.cols, self.size = rows, cols, (height, img_width)
        if kind == "depth":
            half = max(width // 2, 1)
            last = nn.Conv2d(32, 1, 1)
            with torch.no_grad():
                last.bias.fill_(1.0)
            self.before = nn.Conv2d(width, half, 1)
            self.after = nn.Sequential(nn.Conv2d(half, 32, 1), nn.ReLU(), last, nn.ReLU())
        else:
            self.before = nn.Sequential(nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, channels, 1))
            self.after = nn.Identity()

    def forward(self, tokens):
        grid = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], self.rows, self.cols)
        y = F.interpolate(self.before(grid), scale_factor=2.0, mode="bilinear", align_corners=True)
        return F.interpolate(self.after(y), size=self.size, mode="bilinear", align_corners=False)


class Network(nn.Module):
    def __init__(self, kind, tasks, height=448, width=576, stride=16, d=384, heads=6, backbone_depth=4, slots=20, top_k=3):
        super().__init__()
        rows, cols = height // stride, width // stride
        self.tasks = TASKS[tasks]
        scale = 1.0 / 255.0
        self.register_buffer("pixel_mean", torch.tensor([m / scale for m in IMAGENET_MEAN]).reshape(1, 3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor([s / scale for s in IMAGENET_STD]).reshape(1, 3, 1, 1))
        self.backbone = Backbone(d, heads, stride, backbone_depth, rows, cols)
        self.encoders = nn.ModuleList([stack(2, d, heads) for _ in self.tasks])
        self.interaction = modules.create(kind, d, heads, tasks, slots, top_k)
        self.decoders = nn.ModuleList([stack(2, d, heads) for _ in self.tasks])
        self.heads = nn.ModuleList([DenseHead(k, c, d, rows, cols, height, width) for _, k, c, _ in self.tasks])

    def forward(self, images):
        shared = self.backbone((images - self.pixel_mean) / self.pixel_std)
        mixed = self.interaction(torch.stack([e(shared) for e in self.encoders], 1))
        return [h(dec(mixed.select(1, t))) for t, (dec, h) in enumerate(zip(self.decoders, self.heads))]


def masked_mean(values, mask):
    return torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device)).sum() / mask.sum().clamp_min(1).float()


def task_loss(kind, output, label):
    x = output.float()
    if kind == "seg":
        target = label.squeeze(1).long()
        per_pixel = F.cross_entropy(x, target, ignore_index=int(IGNORE), reduction="none")
        return masked_mean(per_pixel, target.ne(int(IGNORE)))
    if kind == "depth":
        return masked_mean((x - label).abs(), label.gt(0).logical_and(label.ne(IGNORE)))
    if kind == "normals":
        x = F.normalize(x, p=2, dim=1, eps=1e-6)
        valid = label.ne(0).any(1, keepdim=True).logical_and(label.eq(IGNORE).any(1, keepdim=True).logical_not()).expand_as(label)
        return masked_mean((x - label).abs(), valid)
    raise ValueError(kind)


class MultiTaskLoss(nn.Module):
    """MultiTaskLoss.cs, MtformerUncertainty: Σ_t w_t · 10 · exp(−s_t) · L_t + s_t."""

    def __init__(self, tasks):
        super().__init__()
        self.weights = [w for *_, w in tasks]
        self.s = nn.Parameter(torch.zeros(len(tasks)))

    def forward(self, losses):
        total = None
        for t, loss in enumerate(losses):
            s = self.s[t]
            term = self.weights[t] * 10.0 * torch.exp(-s) * loss + s
            total = term if total is None else total + term
        return total


def random_batch(tasks, batch, height, width, device):
    images = torch.rand(batch, 3, height, width, device=device).mul_(255)
    labels = []
    for _, kind, channels, _ in tasks:
        if kind == "seg":
            lab = torch.randint(0, channels, (batch, 1, height, width), device=device).float()
            labels.append(lab.masked_fill_(torch.rand(batch, 1, height, width, device=device).lt(0.05), IGNORE))
        elif kind == "depth":
            labels.append(torch.rand(batch, 1, height, width, device=device).mul_(9.5).add_(0.5))
        else:
            labels.append(F.normalize(torch.randn(batch, 3, height, width, device=device), p=2, dim=1))
    return images, labels


def _foreach_copy(dst, src):
    f = getattr(torch, "_foreach_copy_", None)
    if f is not None:
        f(dst, src)
    else:
        for d, s in zip(dst, src):
            d.copy_(s)


class TrainingStep:
    """MultiTaskTrainingLoop's step: bf16 network (on CUDA) with fp32 masters, AdamW(0.9, 0.999, 1e-8, wd), clip 1.0."""

    def __init__(self, network, loss, bf16, weight_decay=1e-4, clip=1.0):
        self.network, self.loss, self.bf16, self.clip = network, loss, bf16, clip
        params = [p for p in network.parameters() if p.requires_grad]
        extra = [p for p in loss.parameters() if p.requires_grad]
        if bf16:
            self.masters = [p.detach().float().clone().requires_grad_(True) for p in params]
            network.to(torch.bfloat16)
            self.working = [p for p in network.parameters() if p.requires_grad]
            for m in self.masters:
                m.grad = torch.zeros_like(m)
        else:
            self.masters, self.working = params, None
        self.optimised = self.masters + extra
        self.optimizer = torch.optim.AdamW(self.optimised, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)

    def run(self, images, labels, lr):
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        outputs = self.network(images.to(torch.bfloat16) if self.bf16 else images)
        losses = [task_loss(kind, out, lab) for (_, kind, _, _), out, lab in zip(self.network.tasks, outputs, labels)]
        total = self.loss(losses)
        if self.working is not None:
            for p in self.working:
                p.grad = None
            self.loss.zero_grad(set_to_none=True)
        else:
            self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        with torch.no_grad():
            if self.working is not None:
                _foreach_copy([m.grad for m in self.masters], [p.grad for p in self.working])
            if self.clip > 0:
                torch.nn.utils.clip_grad_norm_(self.optimised, self.clip)
            self.optimizer.step()
            if self.working is not None:
                _foreach_copy(self.working, self.masters)
        return total, losses
