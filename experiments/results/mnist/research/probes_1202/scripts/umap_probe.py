"""Scratch: SCAN probe + parametric-UMAP embedding head on the shared trunk.

usage: umap_probe.py WORKDIR SEED UMAP_WEIGHT CAT_ON(trunk|emb) [epochs]
"""
import os, sys, time
import flax.linen as nn
import jax, jax.numpy as jnp
import numpy as np
import optax
from sklearn.mixture import GaussianMixture
from lgae import evaluation, latent_cache, losses, metrics

workdir, seed, wu, cat_on = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
epochs = int(sys.argv[5]) if len(sys.argv) > 5 else 6
EMB = int(os.environ.get('EMB', '10')); NEG = int(os.environ.get('NEG', '5')); K = int(os.environ.get('K', '20'))
A, Bexp = 1.929, 0.7915
state, config, mesh = evaluation.load_checkpoint(workdir)
z, labels = latent_cache.encode_split(state, config, mesh, 'train')
z = jnp.asarray(z); nb = latent_cache.nearest_neighbours(z, k=K)
zn, nbn = np.asarray(z), np.asarray(nb)
dist = np.sqrt(np.sum((zn[:, None, :] - zn[nbn]) ** 2, -1))  # [N, K]
rho = dist[:, :1]
lo, hi = np.full((len(zn), 1), 1e-6), np.full((len(zn), 1), 1e3)
for _ in range(64):
    mid = (lo + hi) / 2
    ssum = np.sum(np.exp(-np.maximum(dist - rho, 0) / mid), 1, keepdims=True)
    hi = np.where(ssum > np.log2(K), mid, hi); lo = np.where(ssum > np.log2(K), lo, mid)
memb = np.exp(-np.maximum(dist - rho, 0) / ((lo + hi) / 2))
nb_logw = jnp.asarray(np.log(memb + 1e-12)) if os.environ.get('FUZZY') else jnp.zeros(nbn.shape)
print('mean membership', memb.mean(), flush=True)

class Probe(nn.Module):
    @nn.compact
    def __call__(self, x):
        for w in config.model.discriminator_hidden:
            x = nn.relu(nn.Dense(w)(x))
        emb = nn.Dense(EMB)(x)
        cat = nn.Dense(10)(emb if cat_on == 'emb' else x)
        return cat, emb
probe = Probe(); key = jax.random.PRNGKey(seed)
params = probe.init(key, z[:1]); tx = optax.adam(float(os.environ.get('LR', '2e-4')), b1=0.5, b2=0.9); opt = tx.init(params)
B = 128
def phi_logs(d2):
    # log phi and log(1-phi), phi = 1/(1 + a d^(2b)), d2 = squared distance
    t = A * jnp.power(d2 + 1e-8, Bexp)
    return -jnp.log1p(t), jnp.log(t + 1e-8) - jnp.log1p(t)
@jax.jit
def step(params, opt, key):
    ki, kp, kn = jax.random.split(key, 3)
    idx = jax.random.randint(ki, (B,), 0, z.shape[0])
    pick = jax.random.categorical(kp, nb_logw[idx])[:, None]
    other = jnp.take_along_axis(nb[idx], pick, 1)[:, 0]
    def loss_fn(p):
        cat, emb = probe.apply(p, jnp.concatenate([z[idx], z[other]]))
        l = losses.neighbour_consistency_loss((cat[:B],), (cat[B:],)) - 2.0 * losses.marginal_entropy((cat[:B],))
        if wu > 0:
            e1, e2 = emb[:B], emb[B:]
            lp, _ = phi_logs(jnp.sum((e1 - e2) ** 2, -1))
            perm = jax.random.randint(kn, (B, NEG), 0, 2 * B)
            en = emb[perm]  # [B, NEG, EMB]
            _, ln = phi_logs(jnp.sum((e1[:, None] - en) ** 2, -1))
            l = l + wu * (-jnp.mean(lp) - jnp.mean(jnp.sum(ln, -1)))
        return l
    l, g = jax.value_and_grad(loss_fn)(params)
    u, opt = tx.update(g, opt)
    return optax.apply_updates(params, u), opt, l
fwd = jax.jit(lambda p: probe.apply(p, z))
spe = z.shape[0] // B; t = time.time()
for e in range(epochs):
    for s in range(spe):
        params, opt, l = step(params, opt, jax.random.fold_in(key, e * spe + s))
    cat, emb = fwd(params)
    sc = metrics.clustering_scores(labels, np.asarray(jnp.argmax(cat, -1)))
    msg = f'umap{wu} cat_on={cat_on} seed{seed} epoch {e + 1}: Q {sc["test_error_hungarian"]:.2f} %'
    if wu > 0 and (e + 1) % 3 == 0:
        g = GaussianMixture(10, covariance_type='full', random_state=0).fit(np.asarray(emb[:20000]))
        msg += f'  GMM(emb) {metrics.clustering_scores(labels, g.predict(np.asarray(emb)))["test_error_hungarian"]:.2f} %'
    print(msg + f'  ({time.time() - t:.0f}s)', flush=True)
