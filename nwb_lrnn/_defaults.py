"""The one place for each default setting of a fit (no imports: the CLI reads these without
loading torch).

``LowRankRNN``, ``TrainConfig``, ``particle_filter`` and the CLI take their defaults from here.
Where the CLI differs on purpose, the constant says so.
"""

RANK = 2
CLI_RANK = 3  # the CLI's: the rank of the paper's EEG fits (its main job)
N_UNITS = 64
# the registry's, for the CLI's choices without torch
OBSERVATION_NAMES = ("auto", "gaussian", "gaussian_ar1", "gaussian_var1", "gaussian_sqrt",
                     "poisson")
# (tests/test_ar1_observation.py checks they agree)
NONLINEARITY = "clipped_relu"  # bounded: the generated dynamics cannot run away
N_PARTICLES = 32
MAX_EPOCHS = 200
LEARNING_RATE = 1e-2
LR_FINAL = 1e-3
CLI_LR_DECAY = 100  # the CLI's: the learning rate decays to lr / 100 over the epochs
BATCH_SIZE = 16
GRAD_CLIP = 10.0
VALIDATION_FRACTION = 0.0  # scikit-learn's habit: fit uses all it is given
CLI_VALIDATION_FRACTION = 0.2  # the CLI's: a held-out part for the validation bound and
# the comparison with baselines
ENCODER_KERNEL = 11
ENCODER_HIDDEN = 64
