"""Bad configs are rejected before anything compiles, each naming its field.

The table starts from the shipped configs and breaks one thing per row; each
row asserts a `ConfigError` whose message names the field. The CLI tests run
`experiments.main` in a child process with a bad override and check that the
user sees one `error:` message and no traceback, before anything is compiled.
(The child is forked from a process that has already imported
`experiments.main`, see fault_injection_test.Zygote: it runs the same code as
`python -m experiments.main` without paying ~8 s of imports.)
"""

import pathlib

import ml_collections
import pytest
from absl import flags
from ml_collections import config_flags

from configs import celeba, chairs, common, infovaegan_mnist, mnist
from lgae.core import config_validation
from tests import fake_mnist
from tests import fault_injection_test

REPO = pathlib.Path(__file__).resolve().parents[2]
ConfigError = config_validation.ConfigError


def _set(config, dotted, value):
  """Sets `config.<dotted>` to `value`, even of another type.

  ConfigDict refuses to change a field's type on assignment, but a config file
  written from scratch (or a config rebuilt from JSON) can hold any type, so
  the validator must catch it: delete the field, then add it back.
  """
  *parents, leaf = dotted.split('.')
  node = config
  for name in parents:
    node = node[name]
  with config.unlocked():
    if leaf in node:
      del node[leaf]
    node[leaf] = value


def _delete(config, dotted):
  *parents, leaf = dotted.split('.')
  node = config
  for name in parents:
    node = node[name]
  with config.unlocked():
    del node[leaf]


def _smoke():
  return mnist.get_config('smoke')


# (id, mutation of the smoke MNIST config, num_devices, regex the message must match).
# Every regex names the field at fault as `config.<dotted name>`.
BAD_CONFIGS = [
    # Unknown, misspelt and missing fields.
    ('misspelt_field', lambda c: _set(c, 'loss.lamda_disc', 0.1), None,
     r'config\.loss\.lamda_disc: unknown field\. Did you mean config\.loss\.lambda_disc\?'),
    ('misspelt_top_level', lambda c: _set(c, 'batchsize', 16), None,
     r'config\.batchsize: unknown field\. Did you mean config\.batch_size\?'),
    ('field_in_wrong_group', lambda c: _set(c, 'learning_rate', 1e-3), None,
     r'config\.learning_rate: unknown field\. Did you mean config\.optimizer\.learning_rate\?'),
    ('missing_field', lambda c: _delete(c, 'codes.generator_input_dim'), None,
     r'config\.codes\.generator_input_dim: missing'),
    ('group_replaced_by_scalar', lambda c: _set(c, 'loss', 1.0), None,
     r'^Invalid config:\n  config\.loss: expected a group of fields \(config\.loss\.\*\), '
     r'got 1\.0\.$'),
    # Wrong types.
    ('str_for_int', lambda c: _set(c, 'batch_size', '16'), None,
     r"config\.batch_size: expected int, got '16' \(str\)"),
    ('float_for_int', lambda c: _set(c, 'model.latent_dim', 64.0), None,
     r'config\.model\.latent_dim: expected int, got 64\.0 \(float\)'),
    ('bool_for_int', lambda c: _set(c, 'num_train_steps', True), None,
     r'config\.num_train_steps: expected int, got True \(bool\)'),
    ('tuple_for_float', lambda c: _set(c, 'optimizer.learning_rate', (1e-3,)), None,
     r'config\.optimizer\.learning_rate: expected float, got \(0\.001,\) \(sequence\)'),
    ('int_for_tuple', lambda c: _set(c, 'model.encoder_features', 8), None,
     r'config\.model\.encoder_features: expected sequence, got 8 \(int\)'),
    # Non-positive sizes.
    ('zero_batch', lambda c: _set(c, 'batch_size', 0), None, r'config\.batch_size=0 must be > 0'),
    ('negative_eval_batch', lambda c: _set(c, 'eval_batch_size', -32), None,
     r'config\.eval_batch_size=-32 must be > 0'),
    ('zero_image_size', lambda c: _set(c, 'dataset.image_size', 0), None,
     r'config\.dataset\.image_size=0 must be > 0'),
    ('zero_latent_dim', lambda c: _set(c, 'model.latent_dim', 0), None,
     r'config\.model\.latent_dim=0 must be > 0'),
    ('features_with_zero', lambda c: _set(c, 'model.encoder_features', (8, 0, 8, 8, 8)), None,
     r'config\.model\.encoder_features=\(8, 0, 8, 8, 8\) must be a non-empty sequence of '
     r'positive ints'),
    ('empty_generator_hidden', lambda c: _set(c, 'model.generator_hidden', ()), None,
     r'config\.model\.generator_hidden=\(\) must be a non-empty sequence'),
    ('zero_train_steps', lambda c: _set(c, 'num_train_steps', 0), None,
     r'config\.num_train_steps=0 must be > 0, or -1'),
    # Schedules.
    ('zero_log_interval', lambda c: _set(c, 'log_every_steps', 0), None,
     r'config\.log_every_steps=0 must be > 0'),
    ('negative_checkpoint_interval', lambda c: _set(c, 'checkpoint_every_steps', -5), None,
     r'config\.checkpoint_every_steps=-5 must be > 0'),
    ('negative_eval_interval', lambda c: _set(c, 'eval_every_steps', -2), None,
     r'config\.eval_every_steps=-2 must be > 0, -1 \(only at the end\) or 0'),
    ('zero_checkpoints_kept', lambda c: _set(c, 'max_checkpoints_to_keep', 0), None,
     r'config\.max_checkpoints_to_keep=0 must be > 0'),
    # Code layout.
    ('layout_vs_generator_input', lambda c: _set(c, 'codes.noise_dim', 62), None,
     r'config\.codes\.generator_input_dim=76 but the code layout gives noise_dim 62 \+ '
     r'sum\(categorical\) 10 \+ num_continuous 2 = 74'),
    ('cat_k_below_2', lambda c: _set(c, 'codes.categorical', (1,)), None,
     r'config\.codes\.categorical=\(1,\): every Cat\(K\) needs an int K >= 2'),
    ('no_codes', lambda c: (_set(c, 'codes.categorical', ()), _set(c, 'codes.num_continuous', 0),
                            _set(c, 'codes.generator_input_dim', 64)), None,
     r'config\.codes: no categorical and no continuous code'),
    ('negative_noise_dim', lambda c: _set(c, 'codes.noise_dim', -1), None,
     r'config\.codes\.noise_dim=-1 must be >= 0'),
    # Devices.
    ('batch_not_divisible', lambda c: _set(c, 'batch_size', 30), 4,
     r'config\.batch_size=30 does not divide over the 4 devices'),
    ('eval_batch_not_divisible', lambda c: _set(c, 'eval_batch_size', 30), 4,
     r'config\.eval_batch_size=30 does not divide over the 4 devices'),
    # Image geometry.
    ('image_size_encoder_cannot_take', lambda c: _set(c, 'dataset.image_size', 28), None,
     r'config\.dataset\.image_size=28: the encoder has 5 stride-2 convs and takes 32x32 images'),
    ('decoder_upsample_product', lambda c: _set(c, 'model.decoder_upsample', (4, 2, 2, 4)), None,
     r'config\.model\.decoder_upsample=\(4, 2, 2, 4\) multiplies to 64, but the decoder must '
     r'output dataset\.image_size=32'),
    ('decoder_upsample_length', lambda c: _set(c, 'model.decoder_upsample', (4, 4, 2)), None,
     r'config\.model\.decoder_upsample has 3 factors; it needs one per decoder_features entry'),
    ('even_decoder_kernel', lambda c: _set(c, 'model.decoder_kernel', 4), None,
     r'config\.model\.decoder_kernel=4 must be odd'),
    ('unknown_decoder_upsample_conv',
     lambda c: _set(c, 'model.decoder_upsample_conv', 'fast'), None,
     r"config\.model\.decoder_upsample_conv='fast' must be one of \('auto', 'project_first', "
     r"'upsample_first'\)"),
    ('batch_norm_momentum_1', lambda c: _set(c, 'model.batch_norm_momentum', 1.0), None,
     r'config\.model\.batch_norm_momentum=1\.0 must be in \[0, 1\)'),
    # Losses and optimiser.
    ('label_flip_prob_too_big', lambda c: _set(c, 'loss.label_flip_prob', 0.5), None,
     r'config\.loss\.label_flip_prob=0\.5 must be in \[0, 0\.5\)'),
    ('negative_label_flip_prob', lambda c: _set(c, 'loss.label_flip_prob', -0.1), None,
     r'config\.loss\.label_flip_prob=-0\.1 must be in \[0, 0\.5\)'),
    ('negative_lambda', lambda c: _set(c, 'loss.lambda_disc', -1.0), None,
     r'config\.loss\.lambda_disc=-1\.0 must be >= 0'),
    ('unknown_noise_prior', lambda c: _set(c, 'codes.noise', 'laplace'), None,
     r"config\.codes\.noise='laplace' must be 'normal' or 'uniform'"),
    # 5 - 3 is even, but a 5x5 kernel is not whole 3x3 blocks (models.StridedConv).
    ('encoder_kernel_not_a_multiple_of_stride',
     lambda c: (_set(c, 'model.encoder_kernel', 5), _set(c, 'model.encoder_stride', 3)), None,
     r'config\.model\.encoder_kernel=5 must be a multiple of encoder_stride=3 and differ'),
    ('encoder_kernel_odd_for_stride_2', lambda c: _set(c, 'model.encoder_kernel', 5),
     None, r'config\.model\.encoder_kernel=5 must be a multiple of encoder_stride=2'),
    ('negative_teacher_gan_steps', lambda c: _set(c, 'loss.teacher_gan_steps', -1), None,
     r'config\.loss\.teacher_gan_steps=-1 must be >= 0'),
    ('real_label_above_1', lambda c: _set(c, 'loss.real_label', 1.5), None,
     r'config\.loss\.real_label=1\.5 must be in \[0, 1\]'),
    ('zero_learning_rate', lambda c: _set(c, 'optimizer.learning_rate', 0.0), None,
     r'config\.optimizer\.learning_rate=0\.0 must be > 0'),
    ('negative_learning_rate', lambda c: _set(c, 'optimizer.learning_rate', -1e-4), None,
     r'config\.optimizer\.learning_rate=-0\.0001 must be > 0'),
    ('b1_is_1', lambda c: _set(c, 'optimizer.b1', 1.0), None,
     r'config\.optimizer\.b1=1\.0 must be in \[0, 1\)'),
    ('negative_disc_learning_rate', lambda c: _set(c, 'optimizer.disc_learning_rate', -1e-3), None,
     r'config\.optimizer\.disc_learning_rate=-0\.001 must be >= 0'),
    ('disc_b1_is_1', lambda c: _set(c, 'optimizer.disc_b1', 1.0), None,
     r'config\.optimizer\.disc_b1=1\.0 must be < 1'),
    ('unknown_model', lambda c: _set(c, 'model_name', 'vqvae'), None,
     r"config\.model_name='vqvae': 'vqvae' is not a method; lgae has the methods \('latentgan_ae', 'infogan', 'aae', "
     r"'beta_vae', 'wae_mmd', 'infovaegan', 'latent_stats_vae', 'cg_aae'\)"),
    # Dataset.
    ('unknown_tfds_dataset', lambda c: _set(c, 'dataset.name', 'mnsit'), None,
     r"config\.dataset\.name='mnsit' is not a tfds dataset known here\. Did you mean 'mnist'\?"),
    ('tfds_dataset_without_images', lambda c: _set(c, 'dataset.name', 'imdb_reviews'), None,
     r"config\.dataset\.name='imdb_reviews' has no 'image' feature"),
    ('negative_crop', lambda c: _set(c, 'dataset.crop', -1), None,
     r'config\.dataset\.crop=-1 must be >= 0'),
    ('unknown_resize', lambda c: _set(c, 'dataset.resize', 'stretch'), None,
     r"config\.dataset\.resize='stretch' must be one of \('resize', 'pad'\)"),
    ('crop_larger_than_images', lambda c: _set(c, 'dataset.crop', 30), None,
     r'config\.dataset\.crop=30 is larger than the 28x28 mnist images'),
    ('pad_cannot_shrink', lambda c: (_set(c, 'dataset.name', 'celeb_a'),
                                     _set(c, 'dataset.channels', 3)), None,
     r"config\.dataset\.resize='pad' cannot shrink 218x178 images to image_size=32"),
    ('channels_not_convertible', lambda c: _set(c, 'dataset.channels', 2), None,
     r'config\.dataset\.channels=2: mnist images have 1 channels'),
    ('empty_dataset_name', lambda c: _set(c, 'dataset.name', ''), None,
     r'config\.dataset\.name is empty'),
]


def test_the_table_is_big_enough():
  assert len(BAD_CONFIGS) >= 20
  assert len({row[0] for row in BAD_CONFIGS}) == len(BAD_CONFIGS)


@pytest.mark.parametrize('mutate,num_devices,message',
                         [row[1:] for row in BAD_CONFIGS], ids=[row[0] for row in BAD_CONFIGS])
def test_bad_config_is_rejected_naming_the_field(mutate, num_devices, message):
  config = _smoke()
  mutate(config)
  with pytest.raises(ConfigError, match=message) as info:
    config_validation.validate(config, num_devices=num_devices)
  # One exception listing every problem, each line naming a field.
  lines = str(info.value).splitlines()
  assert lines[0] == 'Invalid config:'
  assert all(line.startswith('  config.') for line in lines[1:]), lines


def test_every_problem_is_reported_at_once():
  config = _smoke()
  _set(config, 'batch_size', 0)
  _set(config, 'optimizer.b1', 1.0)
  _set(config, 'loss.lambda_cont', -1.0)
  with pytest.raises(ConfigError) as info:
    config_validation.validate(config)
  for field in ('config.batch_size', 'config.optimizer.b1', 'config.loss.lambda_cont'):
    assert field in str(info.value)


@pytest.mark.parametrize('module', [mnist, chairs, celeba], ids=lambda m: m.__name__)
@pytest.mark.parametrize('variant', ['paper', 'smoke'])
def test_shipped_configs_are_valid(module, variant):
  config = module.get_config(variant)
  # The dataset itself need not be prepared here (check_available's job);
  # its name must be known and preprocessable.
  config_validation.validate(config, num_devices=1)
  config_validation.validate(config, num_devices=4)  # The forced device count of the tests.


def test_base_config_is_the_schema_and_needs_a_dataset():
  with pytest.raises(ConfigError, match='config.dataset.name is empty'):
    config_validation.validate(common.get_base_config())


# -----------------------------------------------------------------------------
# Splits and sizes that only the prepared dataset can tell.
# -----------------------------------------------------------------------------


@pytest.fixture(scope='module')
def mnist_data_dir(tmp_path_factory):
  """A tiny fake MNIST (64 train / 32 test) prepared as tfds' `mnist`."""
  return fake_mnist.prepare(str(tmp_path_factory.mktemp('fake_mnist')))


@pytest.mark.parametrize('field,value,message', [
    ('dataset.eval_split', 'tset', r"config\.dataset\.eval_split='tset' is not a split of mnist: "
                                   r"Unknown split 'tset'"),
    ('dataset.train_split', 'train[:200%]',
     r"config\.dataset\.train_split='train\[:200%\]' is not a split of mnist"),
    ('dataset.eval_split', 'test[:0]', r"config\.dataset\.eval_split='test\[:0\]' selects no "
                                       r'examples'),
    ('batch_size', 128, r'config\.batch_size=128 is larger than the 64 examples of mnist'),
])
def test_bad_split_or_size_for_the_prepared_data(mnist_data_dir, field, value, message):
  config = _smoke()
  _set(config, 'dataset.data_dir', mnist_data_dir)
  config_validation.validate(config, num_devices=4)  # The base is fine.
  _set(config, field, value)
  with pytest.raises(ConfigError, match=message):
    config_validation.validate(config, num_devices=4)


# -----------------------------------------------------------------------------
# The command line.
# -----------------------------------------------------------------------------


@pytest.fixture(scope='module', autouse=True)
def _boot_zygote(request):
  fault_injection_test.boot_early(request, 'zygote')


@pytest.fixture
def zygote(pytestconfig):
  return fault_injection_test.shared_zygote(pytestconfig)


def test_cli_rejects_indivisible_batch_before_compiling(zygote, tmp_path):
  workdir = tmp_path / 'w'
  child = zygote.start(['--config=configs/mnist.py:smoke', f'--workdir={workdir}',
                        '--config.batch_size=30'], tmp_path / 'log', log_compiles=True,
                       XLA_FLAGS='--xla_force_host_platform_device_count=4')
  assert child.wait() == 1
  output = child.output()
  errors = [line for line in output.splitlines() if line.startswith('error:')]
  assert errors == ['error: Invalid config:'], output[-3000:]
  assert ('  config.batch_size=30 does not divide over the 4 devices JAX sees: use a multiple '
          'of 4.') in output.splitlines()
  assert 'Traceback' not in output
  # Every compilation is logged (log_compiles): there must have been none.
  assert 'Compiling' not in output and 'Finished XLA compilation' not in output, output[-3000:]
  assert not workdir.exists()  # Nothing written, no checkpoint either.


def test_cli_unknown_override_is_one_clear_line(zygote, tmp_path):
  workdir = tmp_path / 'w'
  child = zygote.start(['--config=configs/mnist.py:smoke', f'--workdir={workdir}',
                        '--config.batchsize=32'], tmp_path / 'log')
  assert child.wait() == 1
  output = child.output()
  assert not workdir.exists()
  assert 'Did you mean --config.batch_size?' in output
  assert 'Traceback' not in output, output[-3000:]


@pytest.mark.parametrize('override,message', [
    ('--config.batchsize=32', "--config.batchsize=32: the config has no field 'batchsize'. "
                              'Did you mean --config.batch_size?'),
    ('--config.loss.lamda_disc=1', "--config.loss.lamda_disc=1: the config has no field "
                                   "'lamda_disc'. Did you mean --config.loss.lambda_disc?"),
    ('--config.los.lambda_disc=1', "--config.los.lambda_disc=1: the config has no field 'los'. "
                                   'Did you mean --config.loss.lambda_disc?'),
])
def test_parse_flags_turns_unknown_override_into_usage_error(capsys, override, message):
  flag_values = flags.FlagValues()
  argv = ['main.py', f'--config={REPO / "configs" / "mnist.py"}:smoke', override]
  config_flags.DEFINE_config_file('config', None, flag_values=flag_values, sys_argv=argv,
                                  lock_config=True)
  with pytest.raises(SystemExit) as exit_info:
    config_validation.parse_flags(argv, flag_values=flag_values)
  assert exit_info.value.code == 1
  assert capsys.readouterr().err.splitlines() == [
      f'FATAL Flags parsing error: {message}',
      'Pass --helpshort or --helpfull to see help on flags.']


def test_parse_flags_wrong_type_is_absls_one_line_error(capsys):
  flag_values = flags.FlagValues()
  argv = ['main.py', f'--config={REPO / "configs" / "mnist.py"}:smoke', '--config.batch_size=abc']
  config_flags.DEFINE_config_file('config', None, flag_values=flag_values, sys_argv=argv)
  with pytest.raises(SystemExit) as exit_info:
    config_validation.parse_flags(argv, flag_values=flag_values)
  assert exit_info.value.code == 1
  assert capsys.readouterr().err.splitlines() == [
      "FATAL Flags parsing error: flag --config.batch_size=abc: invalid literal for int() with "
      "base 10: 'abc'", 'Pass --helpshort or --helpfull to see help on flags.']


def test_parse_flags_passes_good_flags_through():
  flag_values = flags.FlagValues()
  argv = ['main.py', f'--config={REPO / "configs" / "mnist.py"}:smoke',
          '--config.loss.lambda_disc=2.5', 'extra']
  holder = config_flags.DEFINE_config_file('config', None, flag_values=flag_values,
                                           sys_argv=argv, lock_config=True)
  assert config_validation.parse_flags(argv, flag_values=flag_values) == ['main.py', 'extra']
  assert holder.value.loss.lambda_disc == 2.5
  assert isinstance(holder.value, ml_collections.ConfigDict)


def test_mnist_best_is_neighbour_plus_the_teacher_and_best_teacher_its_old_name():
  best, neighbour = mnist.get_config('best'), mnist.get_config('neighbour')
  config_validation.validate(best, num_devices=4)
  assert mnist.get_config('best_teacher').to_dict() == best.to_dict()
  # The default is the best recipe; the paper's literal recipe is one word away.
  assert mnist.get_config().to_dict() == best.to_dict()
  paper = mnist.get_config('paper')
  assert paper.schedule == 'joint' and paper.loss.teacher_weight == 0
  assert paper.loss.neighbour_weight == 0 and paper.num_epochs == 10
  assert best.loss.teacher_weight > 0 and neighbour.loss.teacher_weight == 0
  with best.unlocked():
    best.loss.teacher_weight = neighbour.loss.teacher_weight
  assert best.to_dict() == neighbour.to_dict()


def test_mnist_neighbour_is_valid_and_keeps_the_paper_networks():
  neighbour, paper = mnist.get_config('neighbour'), mnist.get_config('paper')
  config_validation.validate(neighbour, num_devices=4)
  # Same Table-2 networks and code layout: only the schedule and Q's extra term differ.
  assert neighbour.model.to_dict() == paper.model.to_dict()
  assert neighbour.codes.to_dict() == paper.codes.to_dict()
  assert neighbour.schedule == 'two_stage' and neighbour.loss.neighbour_weight > 0


def test_fill_new_fields_adds_only_what_is_missing():
  """A saved config without a (newer) field gets its default; fields it has keep their values."""
  config = infovaegan_mnist.get_config('smoke')
  with config.unlocked():
    del config.model['encoder_trunk']
    config.model.mi_variance = 'unit'           # a saved non-default value: kept
    del config['codes']                         # a whole group missing
  filled = config_validation.fill_new_fields(config)
  assert config.model.encoder_trunk == 'own' and config.model.mi_variance == 'unit'
  assert 'model.encoder_trunk' in filled and 'model.mi_variance' not in filled
  assert any(name.startswith('codes.') for name in filled)
  assert config_validation.schema_errors(config) == []
  assert config_validation.fill_new_fields(config) == []
