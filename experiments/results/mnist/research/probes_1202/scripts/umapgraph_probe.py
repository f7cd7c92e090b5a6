"""Scratch: SCAN probe on Enc(x) with the kNN graph taken in a UMAP embedding of the latents."""
import os, sys, time
import flax.linen as nn
import jax, jax.numpy as jnp
import numpy as np
import optax
import umap
from sklearn.metrics import confusion_matrix
from lgae import latent_cache, losses, metrics
npz, seed = sys.argv[1], int(sys.argv[2]); epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 6
K = int(os.environ.get('K', '20'))
d = np.load(npz); z, labels = d['ztr'], d['ytr']
t = time.time()
cache = npz + f'.umap{os.environ.get("UMAP_SEED", "0")}.npy'
if os.path.exists(cache):
    e = np.load(cache)
else:
    e = umap.UMAP(n_components=10, n_neighbors=20, min_dist=0.0, random_state=int(os.environ.get('UMAP_SEED', '0'))).fit_transform(z)
    np.save(cache, e)
print(f'umap {time.time() - t:.0f}s', flush=True)
nb = np.asarray(latent_cache.nearest_neighbours(jnp.asarray(e), k=K))
print('graph label agreement', float(np.mean(labels[nb] == labels[:, None])), flush=True)
z = jnp.asarray(z); nb = jnp.asarray(nb)
class Probe(nn.Module):
    @nn.compact
    def __call__(self, x):
        for w in (1000, 1000, 512):
            x = nn.relu(nn.Dense(w)(x))
        return nn.Dense(10)(x)
probe = Probe(); key = jax.random.PRNGKey(seed)
params = probe.init(key, z[:1]); tx = optax.adam(2e-4, b1=0.5, b2=0.9); opt = tx.init(params)
B = 128
@jax.jit
def step(params, opt, key):
    ki, kp = jax.random.split(key)
    idx = jax.random.randint(ki, (B,), 0, z.shape[0])
    other = jnp.take_along_axis(nb[idx], jax.random.randint(kp, (B, 1), 0, K), 1)[:, 0]
    def loss_fn(p):
        lg = probe.apply(p, jnp.concatenate([z[idx], z[other]]))
        return losses.neighbour_consistency_loss((lg[:B],), (lg[B:],)) - 2.0 * losses.marginal_entropy((lg[:B],))
    l, g = jax.value_and_grad(loss_fn)(params)
    u, opt = tx.update(g, opt)
    return optax.apply_updates(params, u), opt, l
pred = jax.jit(lambda p: jnp.argmax(probe.apply(p, z), -1))
spe = z.shape[0] // B
for ep in range(epochs):
    for s in range(spe):
        params, opt, l = step(params, opt, jax.random.fold_in(key, ep * spe + s))
    sc = metrics.clustering_scores(labels, np.asarray(pred(params)))
    print(f'umapgraph seed{seed} epoch {ep + 1}: {sc["test_error_hungarian"]:.2f} %  ({time.time() - t:.0f}s)', flush=True)
np.set_printoptions(linewidth=200); print(confusion_matrix(labels, np.asarray(pred(params))))
