import numpy as np
import pytest

from bandit.encoding import action_text, context_text
from bandit.exploration import EXPLORATIONS, SettingError, parse_exploration
from bandit.policy import Policy, PolicySettings, validate_settings
from bandit.sampling import sample_index, uniform_slate

ACTIONS = [action_text({"id": f"i{i}", "features": {"cat": f"c{i % 3}"}}) for i in range(8)]
SHARED = context_text({"user": {"segment": "a"}})


@pytest.mark.parametrize(
    "setting, field",
    [
        ({"algorithm": "greedy"}, "algorithm"),
        ({"algorithm": "epsilon", "epsilon": -0.1}, "epsilon"),
        ({"algorithm": "epsilon", "epsilon": 1.5}, "epsilon"),
        ({"algorithm": "epsilon", "epsilon": "0.1"}, "epsilon"),
        ({"algorithm": "epsilon", "gamma_scale": 1}, "gamma_scale"),
        ({"algorithm": "squarecb", "gamma_scale": 0}, "gamma_scale"),
        ({"algorithm": "squarecb", "elim": "yes"}, "elim"),
        ({"algorithm": "squarecb", "elim": True}, "elim"),
        ({"algorithm": "squarecb", "normalize": 1}, "normalize"),
        ({"algorithm": "bag", "bag": 0}, "bag"),
        ({"algorithm": "bag", "bag": 2.5}, "bag"),
        ({"algorithm": "softmax", "lambda": -1}, "lambda"),
        ({"algorithm": "cover", "cover": 0}, "cover"),
        ({"algorithm": "cover", "psi": float("nan")}, "psi"),
    ],
)
def test_invalid_exploration_names_the_field(setting, field):
    with pytest.raises(SettingError) as info:
        parse_exploration(setting)
    assert info.value.field == field


@pytest.mark.parametrize("exploration", [{"algorithm": name} for name in sorted(EXPLORATIONS)]
                         + [{"algorithm": "squarecb", "normalize": True}])
@pytest.mark.parametrize("slots", [1, 3])
def test_every_exploration_gives_a_valid_slate(exploration, slots):
    """Contract over the registry: distinct items, per-slot probabilities in (0, 1], pmf sums to 1."""
    policy = Policy(PolicySettings(slots=slots, exploration=parse_exploration(exploration)))
    for t in range(30):
        chosen = policy.choose(SHARED, ACTIONS, slots, f"e{t}")
        policy.learn(SHARED, ACTIONS, chosen, [float(i == 0) for i, _ in chosen])
    pmf = policy.pmf(SHARED, ACTIONS)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-5)
    chosen = policy.choose(SHARED, ACTIONS, slots, "final")
    assert len({i for i, _ in chosen}) == slots
    assert all(0 < p <= 1 + 1e-6 for _, p in chosen)


@pytest.mark.parametrize("slots", [1, 3])
def test_same_event_id_and_model_give_the_same_slate(slots):
    policy = Policy(PolicySettings(slots=slots))
    assert policy.choose(SHARED, ACTIONS, slots, "evt-1") == policy.choose(SHARED, ACTIONS, slots, "evt-1")
    slates = {tuple(policy.choose(SHARED, ACTIONS, slots, f"evt-{t}")) for t in range(20)}
    assert len(slates) > 1


def test_slate_slot_probabilities_are_conditional_on_earlier_slots():
    """With an untrained model each slot is uniform over what is left: 1/8, 1/7, 1/6."""
    policy = Policy(PolicySettings(slots=3))
    probabilities = [p for _, p in policy.choose(SHARED, ACTIONS, 3, "evt")]
    assert probabilities == pytest.approx([1 / 8, 1 / 7, 1 / 6], rel=1e-4)


@pytest.mark.parametrize("slots", [1, 3])
def test_save_and_load_give_the_same_probabilities(slots):
    policy = Policy(PolicySettings(slots=slots))
    for t in range(50):
        chosen = policy.choose(SHARED, ACTIONS, slots, f"e{t}")
        policy.learn(SHARED, ACTIONS, chosen, [float(i == 3) for i, _ in chosen])
    clone = Policy(policy.settings, policy.save())
    assert np.allclose(policy.pmf(SHARED, ACTIONS), clone.pmf(SHARED, ACTIONS))
    assert policy.choose(SHARED, ACTIONS, slots, "x") == clone.choose(SHARED, ACTIONS, slots, "x")


def test_vw_elimination_gives_negative_probabilities_so_it_is_refused():
    """Why ``elim`` is refused: on tied candidates VW 9 gives the best a negative probability."""
    import vowpalwabbit

    ws = vowpalwabbit.Workspace("--cb_explore_adf --squarecb --elim --quiet")
    assert min(ws.predict(["shared |User a"] + [f"|Action id={i}" for i in range(5)])) < 0
    ws.finish()


@pytest.mark.parametrize("slots", [1, 3])
def test_normalized_exploration_reweights_the_same_model(slots):
    """Normalize changes the probabilities sampled and logged, never the model: the same saved model gives
    normalized inverse-gap weights of SquareCB's probabilities, and a close contender gets more than 1/K."""
    from bandit.igw import normalized

    squarecb = Policy(PolicySettings(slots=slots, exploration=parse_exploration(
        {"algorithm": "squarecb", "gamma_scale": 1000.0, "normalize": False})))
    for t in range(100):  # every action tried; i2 and i5 are clicked half the time, the rest never
        for i in range(len(ACTIONS)):
            squarecb.learn(SHARED, ACTIONS, [(i, 1 / len(ACTIONS))], [float(i in (2, 5) and t % 2 == 0)])
    settings = PolicySettings(slots=slots, exploration=parse_exploration(
        {"algorithm": "squarecb", "gamma_scale": 1000.0, "normalize": True}))
    assert settings.args() == squarecb.settings.args()
    focused = Policy(settings, squarecb.save())
    before, after = squarecb.pmf(SHARED, ACTIONS), focused.pmf(SHARED, ACTIONS)
    assert np.allclose(after, normalized(before)) and after.sum() == pytest.approx(1.0)
    contender = sorted(range(len(ACTIONS)), key=lambda i: -before[i])[1]
    assert before[contender] < 1 / len(ACTIONS) < after[contender]
    for t in range(20):
        (index, p), *_ = focused.choose(SHARED, ACTIONS, slots, f"x{t}")
        assert p == pytest.approx(after[index])


def test_reward_is_learned_as_negative_cost():
    policy = Policy(PolicySettings(exploration=parse_exploration({"algorithm": "epsilon", "epsilon": 0.0})))
    for _ in range(20):
        policy.learn(SHARED, ACTIONS, [(5, 1 / 8)], [1.0])
    assert int(np.argmax(policy.pmf(SHARED, ACTIONS))) == 5


def test_settings_vw_cannot_combine_are_refused_by_vw_itself():
    with pytest.raises(SettingError) as info:
        validate_settings(PolicySettings(vw_args="--loss_function quantile --quantile_tau 0.5 --bag 2 --cover 3"))
    assert info.value.field == "vw_args" and "rejected by Vowpal Wabbit" in info.value.message


def test_valid_vw_args_are_accepted_in_canonical_form():
    settings = PolicySettings(vw_args="--power_t 0.1 -b 20")
    validate_settings(settings)
    assert settings.args().endswith("-l 0.5 --power_t 0.1 --bit_precision 20 --quiet")


def test_sampling_respects_the_pmf():
    draws = np.random.default_rng(0).random(20000)
    picks = np.array([sample_index([0.7, 0.0, 0.3], u) for u in draws])
    assert (picks != 1).all()
    assert abs((picks == 0).mean() - 0.7) < 0.02


def test_uniform_slate_is_distinct_and_seeded():
    slate = uniform_slate(10, 4, "evt")
    assert slate == uniform_slate(10, 4, "evt")
    assert len({i for i, _ in slate}) == 4


@pytest.mark.parametrize("slots", [1, 3])
def test_fast_path_gives_the_plain_api_probabilities(slots):
    """The direct pylibvw calls must agree with ``Workspace.predict``/``learn`` exactly."""
    from bandit.encoding import cb_lines, ccb_lines

    vw_squarecb = parse_exploration({"algorithm": "squarecb", "normalize": False})  # VW's own probabilities
    fast = Policy(PolicySettings(slots=slots, exploration=vw_squarecb))
    plain = Policy(PolicySettings(slots=slots, exploration=vw_squarecb))
    rng = np.random.default_rng(3)
    for t in range(200):
        shared = context_text({"user": {"segment": f"s{t % 3}"}})
        chosen = fast.choose(shared, ACTIONS, slots, f"e{t}")
        rewards = [float(rng.random() < 0.3) for _ in chosen]
        fast.learn(shared, ACTIONS, chosen, rewards)
        labels = [(i, -r, p) for (i, p), r in zip(chosen, rewards)]
        lines = ccb_lines(shared, ACTIONS, slots, labels=labels) if slots > 1 else cb_lines(shared, ACTIONS, labels[0])
        plain._ws.learn(lines)
    for segment in ("s0", "s1", "s2"):
        shared = context_text({"user": {"segment": segment}})
        lines = ccb_lines(shared, ACTIONS, 1) if slots > 1 else cb_lines(shared, ACTIONS)
        expected = plain._ws.predict(lines)
        if slots > 1:
            expected_pmf = np.zeros(len(ACTIONS))
            for index, prob in expected[0]:
                expected_pmf[index] = prob
        else:
            expected_pmf = np.asarray(expected)
        assert np.array_equal(fast.pmf(shared, ACTIONS), expected_pmf)
