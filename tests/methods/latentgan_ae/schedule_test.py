"""The two-stage schedule: stage 1 trains the AE alone, stage 2 the latent GAN on cached latents."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mnist
from lgae import train
from lgae.core import checkpointing, config_validation
from lgae.methods.latentgan_ae import latent_cache
from lgae.objectives import clustering
from lgae.methods.latentgan_ae import step as train_step_lib
from lgae.methods.latentgan_ae import networks
from lgae.methods.latentgan_ae import state as latentgan_state
from tests import fake_mnist


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return fake_mnist.prepare(str(tmp_path_factory.mktemp('fake_mnist')))


def _config(data_dir, **overrides):
  config = mnist.get_config('smoke')
  with config.unlocked():
    config.dataset.data_dir = data_dir
    config.schedule = 'two_stage'
    config.two_stage.autoencoder_steps = 3
    config.two_stage.num_neighbours = 4
    config.loss.neighbour_weight = 1.0
    config.eval_every_steps = -1
    config.eval_latent_diagnostics = False
    config.update(overrides)
  return config


def _restore(workdir, step):
  reader = checkpointing.Checkpointer(str(workdir), read_only=True)
  config = reader.restore_config(step)
  from lgae.core import parallel, state as state_lib  # pylint: disable=g-import-not-at-top
  mesh = parallel.make_mesh()
  state = reader.restore_state(state_lib.abstract_state(config, mesh), step)
  reader.close()
  return jax.device_get(state)


def _equal(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_stage_one_trains_only_the_autoencoder_stage_two_only_the_gan(tmp_path, data_dir):
  config = _config(data_dir)   # 3 AE steps, then 3 latent-GAN steps; checkpoints at 3 and 6.
  workdir = tmp_path / 'run'
  train.train_and_evaluate(config, str(workdir))
  init = jax.device_get(latentgan_state.init_state(
      jax.random.PRNGKey(config.seed), config, networks.build_models(config)))
  mid, end = _restore(workdir, 3), _restore(workdir, 6)
  # Stage 1: the autoencoder moved, G and D/Q are still at their initialisation.
  assert not _equal(mid.ae.params, init.ae.params)
  assert _equal(mid.gen.params, init.gen.params) and _equal(mid.disc.params, init.disc.params)
  # Stage 2: the autoencoder is frozen (parameters and BatchNorm statistics), G and D/Q move.
  assert _equal(end.ae.params, mid.ae.params) and _equal(end.ae.batch_stats, mid.ae.batch_stats)
  assert not _equal(end.gen.params, mid.gen.params)
  assert not _equal(end.disc.params, mid.disc.params)


def test_two_stage_resume_is_exact(tmp_path, data_dir):
  config = _config(data_dir)
  straight = tmp_path / 'straight'
  train.train_and_evaluate(config, str(straight))
  # Interrupted inside stage 2 (step 4), then resumed: the cache is rebuilt
  # from the restored encoder and the run ends bit for bit where the other does.
  resumed = tmp_path / 'resumed'
  with config.unlocked():
    config.num_train_steps = 4
    config.checkpoint_every_steps = 4
  train.train_and_evaluate(config, str(resumed))
  with config.unlocked():
    config.num_train_steps = 6
    config.checkpoint_every_steps = 3
  train.train_and_evaluate(config, str(resumed))
  assert _equal(_restore(straight, 6), _restore(resumed, 6))


def _counting_teacher_fits(data_dir, monkeypatch):
  """A 6-step two-stage config with the teacher, and a list that grows by one per teacher fit."""
  from lgae.methods.latentgan_ae import latent_teacher  # pylint: disable=g-import-not-at-top
  fits = []
  real_fit = latent_teacher.umap_gmm_clusters
  monkeypatch.setattr(latent_teacher, 'umap_gmm_clusters',
                      lambda *args, **kwargs: fits.append(1) or real_fit(*args, **kwargs))
  config = _config(data_dir, num_train_steps=6)
  with config.unlocked():
    config.loss.teacher_weight = 1.0
    config.two_stage.teacher_dims = 2
  return fits, config


def test_a_resumed_stage_two_reads_the_teachers_labels_instead_of_refitting(
    tmp_path, data_dir, monkeypatch):
  fits, config = _counting_teacher_fits(data_dir, monkeypatch)
  straight = tmp_path / 'straight'
  train.train_and_evaluate(config, str(straight))
  assert len(fits) == 1
  # Stopped inside stage 2 (step 4), then resumed: the labels are read back.
  resumed = tmp_path / 'resumed'
  with config.unlocked():
    config.num_train_steps, config.checkpoint_every_steps = 4, 4
  train.train_and_evaluate(config, str(resumed))
  [cached] = list((resumed / train.PHASE_CACHE / 'latent_gan').glob('teacher_*.npy'))
  with config.unlocked():
    config.num_train_steps, config.checkpoint_every_steps = 6, 3
  train.train_and_evaluate(config, str(resumed))
  assert len(fits) == 2   # The straight run's fit and the first part's; none on resume.
  assert _equal(_restore(straight, 6), _restore(resumed, 6))
  # Labels that do not fit the latents are not trusted: refitted, and the run is the same.
  again = tmp_path / 'again'
  with config.unlocked():
    config.num_train_steps = 4
  train.train_and_evaluate(config, str(again))
  bad = again / train.PHASE_CACHE / 'latent_gan' / cached.name   # The same latents, the same key.
  np.save(bad, np.full(np.load(cached).shape, 99, np.int32))
  with config.unlocked():
    config.num_train_steps = 6
  train.train_and_evaluate(config, str(again))
  assert len(fits) == 4 and _equal(_restore(straight, 6), _restore(again, 6))


def test_a_run_on_a_donors_autoencoder_reads_the_donors_teacher(tmp_path, data_dir, monkeypatch):
  fits, config = _counting_teacher_fits(data_dir, monkeypatch)
  donor = tmp_path / 'donor'
  train.train_and_evaluate(config, str(donor))
  assert len(fits) == 1
  with config.unlocked():
    config.two_stage.autoencoder_workdir = str(donor)
  taker = tmp_path / 'taker'
  train.train_and_evaluate(config, str(taker))
  assert len(fits) == 1   # The donor's labels, not a second fit.
  [kept] = list((donor / train.PHASE_CACHE / 'latent_gan').glob('teacher_*.npy'))
  copied = taker / train.PHASE_CACHE / 'latent_gan' / kept.name
  np.testing.assert_array_equal(np.load(copied), np.load(kept))   # Its own copy, for resumes.
  assert _equal(_restore(donor, 6), _restore(taker, 6))
  # Another seed is another teacher (the key holds the seed): fitted afresh.
  with config.unlocked():
    config.seed = 1
  train.train_and_evaluate(config, str(tmp_path / 'other_seed'))
  assert len(fits) == 2


def test_autoencoder_taken_from_another_workdir(tmp_path, data_dir):
  donor = tmp_path / 'donor'
  train.train_and_evaluate(_config(data_dir, num_train_steps=4), str(donor))
  donor_state = _restore(donor, 4)
  config = _config(data_dir, num_train_steps=5)
  with config.unlocked():
    config.two_stage.autoencoder_workdir = str(donor)
  workdir = tmp_path / 'taker'
  state = train.train_and_evaluate(config, str(workdir))
  assert int(state.step) == 5   # starts at autoencoder_steps = 3: two latent-GAN steps.
  assert _equal(jax.device_get(state.ae.params), donor_state.ae.params)
  assert checkpointing.Checkpointer(str(workdir), read_only=True).all_steps() == [5]
  # The G/D/Q side and the codes may differ from the donor's ...
  config = _config(data_dir, num_train_steps=4)
  with config.unlocked():
    config.two_stage.autoencoder_workdir = str(donor)
    config.codes.noise_dim = 4
    config.codes.generator_input_dim = 16
    config.model.generator_hidden = (16,)
  state = train.train_and_evaluate(config, str(tmp_path / 'other_gan'))
  assert _equal(jax.device_get(state.ae.params), donor_state.ae.params)
  # ... but a donor with another autoencoder is refused before anything trains.
  config = _config(data_dir, num_train_steps=5)
  with config.unlocked():
    config.two_stage.autoencoder_workdir = str(donor)
    config.model.latent_dim = 32
  with pytest.raises(checkpointing.CheckpointError):
    train.train_and_evaluate(config, str(tmp_path / 'other'))
  assert not (tmp_path / 'other').exists()   # A refusal leaves no empty workdir behind.


@pytest.mark.parametrize('overrides, message', [
    ({'schedule': 'alternating'}, 'config.schedule'),
    ({'schedule': 'joint'}, 'config.loss.neighbour_weight'),
    ({'loss.encoder_adversarial_weight': 0.1}, 'encoder_adversarial_weight'),
    ({'two_stage.autoencoder_steps': 0}, 'autoencoder_steps=0'),
    ({'num_train_steps': 3}, 'leaves no latent-GAN steps'),
    ({'two_stage.num_neighbours': 0}, 'num_neighbours'),
    ({'schedule': 'joint', 'loss.neighbour_weight': 0.0, 'loss.teacher_weight': 1.0},
     'config.loss.teacher_weight=1.0 needs'),
    ({'loss.teacher_weight': -1.0}, 'teacher_weight=-1.0 must be >= 0'),
    ({'two_stage.teacher_dims': 1}, 'teacher_dims'),
    ({'two_stage.teacher_gmm_inits': 0}, 'teacher_gmm_inits'),
    ({'loss.gan_weight': -1.0}, 'gan_weight=-1.0 must be >= 0'),
    ({'loss.gan_weight': 0.0, 'loss.neighbour_weight': 0.0}, 'leaves Q nothing to learn'),
    ({'schedule': 'joint', 'loss.neighbour_weight': 0.0, 'loss.gan_weight': 0.0},
     'gan_weight=0.0 is a two-stage ablation'),
])
def test_bad_two_stage_configs_are_refused(overrides, message):
  config = _config('')
  with config.unlocked():
    for dotted, value in overrides.items():
      node = config
      *groups, leaf = dotted.split('.')
      for g in groups:
        node = node[g]
      node[leaf] = value
  with pytest.raises(config_validation.ConfigError, match=message):
    config_validation.validate(config, check_dataset=False)


def test_nearest_neighbours_match_brute_force():
  points = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
  got = np.asarray(latent_cache.nearest_neighbours(jnp.asarray(points), k=4, chunk=64))
  d = np.square(points[:, None] - points[None]).sum(-1)
  np.fill_diagonal(d, np.inf)
  expected = np.argsort(d, axis=1)[:, :4]
  assert got.shape == (300, 4)
  np.testing.assert_array_equal(got, expected)


def test_latent_batches_visit_every_latent_once_per_epoch():
  rng = jax.random.PRNGKey(3)
  n, batch = 50, 8   # 6 steps per epoch; 2 latents left out per epoch.
  epoch0 = np.concatenate([train_step_lib.latent_batch_indices(rng, s, n, batch) for s in range(6)])
  epoch1 = np.concatenate([train_step_lib.latent_batch_indices(rng, s, n, batch)
                           for s in range(6, 12)])
  assert len(set(epoch0.tolist())) == 48 and len(set(epoch1.tolist())) == 48
  assert not np.array_equal(epoch0, epoch1)


def test_neighbour_consistency_and_marginal_entropy_values():
  # Two examples, K = 2. p = (0.5, 0.5) vs (1, 0): <p, q> = 0.5; identical one-hots: 1.
  big = 30.0
  a = (jnp.array([[0.0, 0.0], [big, -big]]),)
  b = (jnp.array([[big, -big], [big, -big]]),)
  expected = -(np.log(0.5) + np.log(1.0)) / 2
  np.testing.assert_allclose(clustering.neighbour_consistency_loss(a, b), expected, atol=1e-5)
  # Marginal of [(0.5, 0.5), (1, 0)] is (0.75, 0.25).
  h = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
  np.testing.assert_allclose(clustering.marginal_entropy(a), h, atol=1e-5)
  # All examples in one category: the marginal entropy is 0, the consistency perfect.
  np.testing.assert_allclose(clustering.marginal_entropy(b), 0.0, atol=1e-5)
  np.testing.assert_allclose(clustering.neighbour_consistency_loss(b, b), 0.0, atol=1e-5)


_FIXTURES = pathlib.Path(__file__).resolve().parents[2] / 'fixtures' / 'checkpoints'


@pytest.mark.parametrize('donor, message', [
    ('missing', 'holds no checkpoints'),
    ('infogan_mnist', "holds a 'infogan' run, not a 'latentgan_ae' one"),
])
def test_a_donor_that_is_not_a_latentgan_ae_run_is_one_error_naming_the_field(
    tmp_path, data_dir, donor, message):
  donor_dir = tmp_path / 'missing' if donor == 'missing' else _FIXTURES / donor
  before = sorted(p.name for p in donor_dir.rglob('*')) if donor_dir.exists() else None
  config = _config(data_dir)
  with config.unlocked():
    config.two_stage.autoencoder_workdir = str(donor_dir)
  with pytest.raises(checkpointing.CheckpointError, match='two_stage.autoencoder_workdir') as e:
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert message in str(e.value)
  assert not (tmp_path / 'run').exists()   # Nor an empty checkpoints/ or a lock file.
  if before is not None:   # read, never written.
    assert sorted(p.name for p in donor_dir.rglob('*')) == before
