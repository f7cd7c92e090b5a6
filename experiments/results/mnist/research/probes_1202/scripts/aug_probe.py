"""Scratch: SCAN-style probe with augmented-view pairs in addition to kNN pairs.

usage: aug_probe.py WORKDIR MODE SEED [views]
MODE: knn | aug | mix   (pairs drawn from kNN, from augmented views, or half/half)
"""
import sys, time
import flax.linen as nn
import jax, jax.numpy as jnp
import numpy as np
import optax
from lgae import evaluation, latent_cache, losses, metrics, input_pipeline

workdir, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
views = int(sys.argv[4]) if len(sys.argv) > 4 else 4
epochs = int(sys.argv[5]) if len(sys.argv) > 5 else 6
state, config, mesh = evaluation.load_checkpoint(workdir)
imgs, labels = [], []
for b in input_pipeline.eval_iterator(config, split='train'):
    keep = b['mask'] > 0
    imgs.append(b['image'][keep]); labels.append(b['label'][keep])
imgs, labels = np.concatenate(imgs), np.concatenate(labels)
enc = jax.jit(lambda im: state.ae.apply_fn({'params': state.ae.params}, im, method='encode'))

def augment(key, im):
    # random affine: rotation +-15 deg, scale 0.9-1.1, shift +-2.5 px; background -1
    n, s = im.shape[0], im.shape[1]
    k1, k2, k3 = jax.random.split(key, 3)
    ang = jax.random.uniform(k1, (n,), minval=-np.pi / 12, maxval=np.pi / 12)
    sc = jax.random.uniform(k2, (n,), minval=0.9, maxval=1.1)
    sh = jax.random.uniform(k3, (n, 2), minval=-2.5, maxval=2.5)
    c = (s - 1) / 2
    yy, xx = jnp.meshgrid(jnp.arange(s) - c, jnp.arange(s) - c, indexing='ij')
    def one(img, a, scl, t):
        ca, sa = jnp.cos(a) / scl, jnp.sin(a) / scl
        sy = ca * yy - sa * xx + c - t[0]
        sx = sa * yy + ca * xx + c - t[1]
        return jax.scipy.ndimage.map_coordinates(img[..., 0], [sy, sx], order=1, mode='constant', cval=-1.0)[..., None]
    return jax.vmap(one)(im, ang, sc, sh)
augment = jax.jit(augment)

t = time.time()
z = np.concatenate([np.asarray(enc(imgs[i:i + 1000])) for i in range(0, len(imgs), 1000)])
zv = []
for v in range(views):
    out = []
    for i in range(0, len(imgs), 1000):
        a = augment(jax.random.fold_in(jax.random.PRNGKey(1234 + v), i), jnp.asarray(imgs[i:i + 1000]))
        out.append(np.asarray(enc(a)))
    zv.append(np.concatenate(out))
zv = np.stack(zv, 1)  # [N, V, D]
print(f'encoded {views} views in {time.time() - t:.0f}s', flush=True)
z = jnp.asarray(z); zv = jnp.asarray(zv)
K = int(__import__("os").environ.get("K", "20"))
if __import__("os").environ.get("SPACE") == "image":
    nb = latent_cache.nearest_neighbours(jnp.asarray(imgs.reshape(imgs.shape[0], -1)), k=K)
else:
    nb = latent_cache.nearest_neighbours(z, k=K)
_nbn = np.asarray(nb)
print("graph label agreement (all k)", float(np.mean(labels[_nbn] == labels[:, None])), "first 10", float(np.mean(labels[_nbn[:, :10]] == labels[:, None])), flush=True)
if __import__("os").environ.get("MUTUAL"):
    nbn = np.asarray(nb); n = nbn.shape[0]
    sets = [set(r) for r in nbn]
    mut = np.array([[j if i in sets[j] else -1 for j in r] for i, r in enumerate(nbn)])
    # replace non-mutual by the nearest neighbour (always kept)
    print("mutual fraction", float(np.mean(mut >= 0)), "label agree of mutual", float(np.mean((labels[np.where(mut>=0, mut, 0)] == labels[:, None])[mut >= 0])), flush=True)
    nb = jnp.asarray(np.where(mut >= 0, mut, nbn[:, :1]))
# kNN agreement of augmented view with its own image vs neighbours
if views > 1: print('view->own-image-kNN label agreement', float(np.mean(labels[np.asarray(latent_cache.nearest_neighbours(jnp.concatenate([z, zv[:, 0]]), k=1))[60000:, 0] % 60000] == labels)), flush=True)

class Probe(nn.Module):
    @nn.compact
    def __call__(self, x):
        for w in config.model.discriminator_hidden:
            x = nn.relu(nn.Dense(w)(x))
        return nn.Dense(10)(x)
probe = Probe(); key = jax.random.PRNGKey(seed)
params = probe.init(key, z[:1]); tx = optax.adam(2e-4, b1=0.5, b2=0.9); opt = tx.init(params)
B = 128
@jax.jit
def step(params, opt, key):
    ki, kp, kv, km = jax.random.split(key, 4)
    idx = jax.random.randint(ki, (B,), 0, z.shape[0])
    pick = jax.random.randint(kp, (B, 1), 0, K)
    other_knn = z[jnp.take_along_axis(nb[idx], pick, 1)[:, 0]]
    other_aug = zv[idx, jax.random.randint(kv, (B,), 0, views)]
    if mode == 'knn': other = other_knn
    elif mode == 'aug': other = other_aug
    else: other = jnp.where(jax.random.bernoulli(km, 0.5, (B, 1)), other_aug, other_knn)
    def loss_fn(p):
        lg = probe.apply(p, jnp.concatenate([z[idx], other]))
        return losses.neighbour_consistency_loss((lg[:B],), (lg[B:],)) - 2.0 * losses.marginal_entropy((lg[:B],))
    l, g = jax.value_and_grad(loss_fn)(params)
    u, opt = tx.update(g, opt)
    return optax.apply_updates(params, u), opt, l
pred = jax.jit(lambda p: jnp.argmax(probe.apply(p, z), -1))
spe = z.shape[0] // B
for e in range(epochs):
    for s in range(spe):
        params, opt, l = step(params, opt, jax.random.fold_in(key, e * spe + s))
    sc = metrics.clustering_scores(labels, np.asarray(pred(params)))
    print(f'{mode} seed{seed} epoch {e + 1}: {sc["test_error_hungarian"]:.2f} %  ({time.time() - t:.0f}s)', flush=True)
from sklearn.metrics import confusion_matrix
p_ = np.asarray(pred(params))
cm = confusion_matrix(labels, p_)
np.set_printoptions(linewidth=200)
print('confusion (rows: digit, cols: cluster)\n', cm)
print('cluster sizes', np.bincount(p_, minlength=10))
