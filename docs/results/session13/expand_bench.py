import time, torch
from maskpose.config import apply_overrides, load_yaml
from maskpose.demo import default_config_path
from maskpose.skeleton import get_joint_set
from maskpose.train import TensorBatches, TrainConfig, build_model, compute_losses
torch.set_num_threads(1)
cfg = apply_overrides(load_yaml(TrainConfig, default_config_path()), ["model.heatmap_stride=2"])
js = get_joint_set(cfg.joint_set)
data = TensorBatches('/tmp/s12/data/test', cfg.model.input)
model = build_model(cfg); opt = torch.optim.AdamW(model.parameters(), 1e-4)
b = data.batch(torch.arange(8), torch.device('cpu'))
bc = dict(b); bc['images'] = b['images'].contiguous()
def step(bb):
    loss, _, _ = compute_losses(model, bb, cfg, js, 10**6); opt.zero_grad(); loss.backward(); opt.step()
for name, bb in [('expanded', b), ('contiguous', bc), ('expanded', b), ('contiguous', bc)]:
    step(bb); t = time.perf_counter()
    for _ in range(6): step(bb)
    print(name, '%.0f ms/step' % ((time.perf_counter() - t) / 6 * 1000), flush=True)
