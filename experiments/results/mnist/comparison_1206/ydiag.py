"""Cluster-head diagnostics of an AAE checkpoint: y's confidence, entropy, argmax histogram."""
import sys, numpy as np, jax
from lgae import evaluation, methods
import tensorflow_datasets as tfds
state, config, mesh = evaluation.load_checkpoint(sys.argv[1])
m = methods.for_state(state)
ds = tfds.as_numpy(tfds.load('mnist', split='test[:2000]', batch_size=-1))
x = ds['image'].astype(np.float32) / 127.5 - 1
x = np.pad(x, ((0,0),(2,2),(2,2),(0,0)), constant_values=-1)
out = m.eval_outputs(state, x)
logits = np.asarray(out['cat_logits'][0])
p = np.exp(logits - logits.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
print('max prob mean %.3f  median %.3f' % (p.max(1).mean(), np.median(p.max(1))))
print('row entropy %.3f nats (uniform %.3f)' % ((-(p*np.log(p+1e-12)).sum(1)).mean(), np.log(p.shape[1])))
print('marginal y (mean softmax):', np.round(p.mean(0), 3))
print('argmax histogram:', np.bincount(p.argmax(1), minlength=p.shape[1]))
print('logit std across rows per unit (mean): %.3f; logit range %.2f' % (logits.std(0).mean(), logits.max()-logits.min()))
