"""The LA-MCTS torch models against scikit-learn (k-means, SVC) and GP behaviour, on cpu."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from sklearn.cluster import KMeans  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

from gml_ray.searchers.lamcts import svm_dual as svm  # noqa: E402
from gml_ray.searchers.lamcts.gp import GaussianProcess  # noqa: E402
from gml_ray.searchers.lamcts.kmeans import kmeans, kmeans_many  # noqa: E402
from gml_ray.searchers.lamcts.svm import KernelSVM, fit_svms  # noqa: E402
from gml_ray.searchers.lamcts.tensors import pick_device  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One BLAS/OpenMP thread: on shared busy cores, spinning thread pools cost far more than they gain."""
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)


def agreement_up_to_permutation(a: np.ndarray, b: np.ndarray) -> float:
    same = float((a == b).mean())
    return max(same, 1.0 - same)


def cluster_features(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """[x, value] as the tree builds them: the value standardised to carry x's total variance."""
    w = np.sqrt(x.var(0, ddof=1).sum())
    return np.hstack([x, ((v - v.mean()) / v.std(ddof=1) * w)[:, None]])


def blobs_5d(rng: np.random.Generator) -> np.ndarray:
    return np.vstack([rng.normal(0.0, 1.0, (200, 5)), rng.normal(3.0, 1.0, (200, 5))])


def blobs_unbalanced(rng: np.random.Generator) -> np.ndarray:
    return np.vstack([rng.normal(0.0, 1.0, (300, 4)), rng.normal(4.0, 0.7, (40, 4))])


def x_value_17d(rng: np.random.Generator) -> np.ndarray:
    x = rng.random((300, 16))
    v = -((x - 0.3) ** 2).sum(1) + 0.2 * np.sin(8 * x[:, 0])
    return cluster_features(x, v)


@pytest.mark.parametrize("make", [blobs_5d, blobs_unbalanced, x_value_17d])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_agrees_with_sklearn(make, seed):
    data = make(np.random.default_rng(seed))
    ref = KMeans(n_clusters=2, n_init=10, random_state=0).fit(data).labels_
    labels = kmeans(torch.tensor(data), k=2, seed=seed)
    assert labels.dtype == torch.int64 and labels.shape == (data.shape[0],)
    assert agreement_up_to_permutation(labels.numpy(), ref) >= 0.95


def test_kmeans_identical_points_give_one_label():
    labels = kmeans(torch.ones(30, 3, dtype=torch.float64), k=2, seed=0)
    assert labels.shape == (30,)
    assert torch.unique(labels).numel() == 1


def test_kmeans_same_seed_same_labels():
    data = torch.tensor(x_value_17d(np.random.default_rng(5)))
    assert torch.equal(kmeans(data, seed=3), kmeans(data, seed=3))


def svm_datasets() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    x, x_test = rng.random((300, 6)), rng.random((1000, 6))
    nonlinear = (np.sin(3 * x[:, 0]) + x[:, 1] ** 2 - x[:, 2] * x[:, 3] > 0.6).astype(int)
    v = -((x - 0.4) ** 2).sum(1)
    clusters = KMeans(n_clusters=2, n_init=10, random_state=0).fit(cluster_features(x, v)).labels_
    return {"nonlinear": (x, nonlinear, x_test), "clusters": (x, clusters, x_test)}


SVM_DATA = svm_datasets()


@pytest.mark.parametrize("data", sorted(SVM_DATA))
@pytest.mark.parametrize("gamma", ["auto", "scale"])
@pytest.mark.parametrize("kernel", ["linear", "poly", "rbf"])
def test_svm_agrees_with_sklearn(kernel, gamma, data):
    x, y, x_test = SVM_DATA[data]
    assert 0.1 < y.mean() < 0.9
    ref = SVC(kernel=kernel, gamma=gamma, C=1.0).fit(x, y).predict(x_test)
    model = KernelSVM(kernel=kernel, gamma=gamma, C=1.0).fit(torch.tensor(x), torch.tensor(y))
    pred = model.predict(torch.tensor(x_test))
    assert pred.dtype == torch.int64
    assert float((pred.numpy() == ref).mean()) >= 0.95
    scores = model.decision_function(torch.tensor(x_test))
    assert torch.equal(pred, (scores > 0).long())


def test_svm_bool_labels_and_one_class():
    x, y, _ = SVM_DATA["nonlinear"]
    xt = torch.tensor(x)
    by_int = KernelSVM().fit(xt, torch.tensor(y)).predict(xt)
    by_bool = KernelSVM().fit(xt, torch.tensor(y).bool()).predict(xt)
    assert torch.equal(by_int, by_bool)
    with pytest.raises(ValueError, match="both classes"):
        KernelSVM().fit(xt, torch.zeros(len(x), dtype=torch.long))


def test_kmeans_many_gives_each_set_its_own_kmeans():
    """Batched 2-means (sets of different sizes, padded together) labels each set as kmeans does
    alone; a warm start from the centres given (init) is one of the runs."""
    rng = np.random.default_rng(4)
    sets = [torch.tensor(blobs_5d(rng)[:n]) for n in (400, 37, 150)]
    init = torch.tensor([[0.0] * 5, [3.0] * 5])
    many = kmeans_many(sets, k=2, n_init=[3, 2, 0], seeds=[1, 2, 3], inits=[None, None, init])
    alone = [kmeans(sets[0], seed=1, n_init=3), kmeans(sets[1], seed=2, n_init=2),
             kmeans(sets[2], seed=3, n_init=0, init=init)]
    for a, b in zip(many, alone):
        assert torch.equal(a, b)


def separable(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes split by a margin (|x_0 - 0.5| >= 0.1): an SVM must separate them exactly."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    x[:, 0] = torch.where(x[:, 0] < 0.5, 0.4 * x[:, 0] / 0.5, 0.6 + 0.4 * (x[:, 0] - 0.5) / 0.5)
    return x, (x[:, 0] > 0.5).long()


@pytest.mark.parametrize("polish", [True, False])
@pytest.mark.parametrize("gamma", ["auto", "scale"])
def test_svm_stops_early_converged_and_separates_a_separable_set(gamma, polish):
    """The solver stops once libsvm's gap is below tol (1e-3), long before max_iter, and what
    it stops at separates a separable set; the polish (an exact solve on the face FISTA points
    to) only makes it stop sooner."""
    x, y = separable(200, 6, seed=3)
    model = KernelSVM(kernel="rbf", gamma=gamma, C=1.0, polish=polish).fit(x, y)
    assert 0 < model.n_iter_ < model.max_iter
    assert torch.equal(model.predict(x), y)
    assert model.alpha_ is not None and model.support_ is not None
    grad = _dual_gradient(model, x, y)
    assert svm.kkt_gaps(model.alpha_[None], grad[None], svm.Box(
        (2.0 * y - 1.0).float()[None], torch.full((1, 200), model.C))).item() <= model.tol
    x_test, y_test = separable(500, 6, seed=4)
    assert float((model.predict(x_test) == y_test).float().mean()) >= 0.98


def _dual_gradient(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Q alpha - 1 of a fitted model (Q = s K s), from its kernel."""
    s = (2.0 * y - 1.0).float()
    k = model._kernel(x.float(), x.float())
    return s * (k @ (s * model.alpha_)) - 1.0


def test_fit_svms_batched_solves_are_the_solves_alone():
    """fit_svms pads problems of different sizes into one batch: each comes out as KernelSVM.fit
    alone gives it (same iterations, same solution up to rounding), warm starts included."""
    data = [separable(n, 5, seed) for n, seed in ((120, 0), (35, 1), (300, 2))]
    data[1] = (data[1][0], torch.tensor(SVM_DATA["nonlinear"][1][:35]))
    warm = KernelSVM(gamma="scale").fit(*data[2])
    alpha0s = [None, None, warm.alpha_ + 0.01]
    together = [KernelSVM(gamma="scale") for _ in data]
    fit_svms(together, [d[0] for d in data], [d[1] for d in data], alpha0s)
    for (x, y), a0, model in zip(data, alpha0s, together):
        alone = KernelSVM(gamma="scale").fit(x, y, a0)
        assert model.n_iter_ == alone.n_iter_
        assert torch.allclose(model.alpha_, alone.alpha_, atol=1e-4)
        probe = torch.rand(300, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        assert torch.allclose(model.decision_function(probe), alone.decision_function(probe),
                              atol=1e-4)
    with pytest.raises(ValueError, match="same kernel"):
        fit_svms([KernelSVM(), KernelSVM(C=2.0)], [data[0][0]] * 2, [data[0][1]] * 2)


def test_projection_is_exact():
    """The projection onto {0 <= a <= C, y.a = 0} lands on the set, and no feasible point is
    nearer (checked against random feasible points)."""
    g = torch.Generator().manual_seed(0)
    for n in (2, 7, 50):
        y = torch.where(torch.arange(n) % 3 == 0, 1.0, -1.0)
        v = 2.0 * torch.randn(n, generator=g)
        p = svm.project_box_hyperplane(v, y, 1.0)
        assert bool(((p >= 0) & (p <= 1)).all()) and abs(float(y @ p)) < 1e-5
        for _ in range(50):
            other = svm.project_box_hyperplane(torch.rand(n, generator=g) * 3 - 1, y, 1.0)
            assert float((v - p).norm()) <= float((v - other).norm()) + 1e-5


def smooth(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(3 * x[:, 0]) + torch.cos(2 * x[:, 1]) + x[:, 2] ** 2


@pytest.fixture(scope="module")
def gp_data():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 3, generator=g, dtype=torch.float64)
    x_test = torch.rand(200, 3, generator=g, dtype=torch.float64)
    gp = GaussianProcess().fit(x, smooth(x))
    return gp, x, x_test


def test_gp_fits_a_smooth_function(gp_data):
    gp, x, x_test = gp_data
    mean, var = gp.posterior(x_test)
    y_test = smooth(x_test)
    rmse = float(((mean - y_test) ** 2).mean().sqrt())
    assert rmse < 0.2 * float(smooth(x).std())
    assert mean.shape == var.shape == (200,) and bool((var > 0).all())
    _, var_train = gp.posterior(x)
    _, var_far = gp.posterior(torch.full((1, 3), 3.0, dtype=torch.float64))
    assert float(var_train.max()) < 0.05 * float(var_far)


def test_gp_ard_finds_the_irrelevant_dimension():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(60, 3, generator=g, dtype=torch.float64)
    y = torch.sin(4 * x[:, 0]) + torch.cos(3 * x[:, 1])  # dimension 2 is irrelevant
    gp = GaussianProcess().fit(x, y)
    assert gp.lengthscale.shape == (3,)
    assert float(gp.lengthscale[2]) > float(gp.lengthscale[:2].max())
    assert GaussianProcess(ard=False).fit(x, y).lengthscale.shape == (1,)


@pytest.mark.parametrize("ard,prior", [(True, False), (False, False), (True, True),
                                       (False, True)])
def test_gp_gradient_in_closed_form_is_autograds(ard, prior):
    """GaussianProcess.fit's closed-form gradient of the negative log marginal likelihood (with
    ``prior``: plus the priors' negative logs) equals the one autograd finds through the
    Cholesky factor."""
    from gml_ray.searchers.lamcts.gp import bounded, cholesky

    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 4, generator=g, dtype=torch.float64)
    z = torch.randn(50, generator=g, dtype=torch.float64)
    gp = GaussianProcess(ard=ard, prior=prior)
    n_ls = 4 if ard else 1
    params = torch.randn(n_ls + 3, generator=g, dtype=torch.float64)
    closed = gp._nll_grad(x, z, params, n_ls)
    p = params.clone().requires_grad_(True)
    lsb, osb, nb = gp.lengthscale_bounds, gp.outputscale_bounds, gp.noise_bounds
    ls, outputscale, noise = (bounded(p[:n_ls], *lsb), bounded(p[n_ls], *osb),
                              bounded(p[n_ls + 1], *nb))
    k = gp._matern(x, x, ls, outputscale)
    chol = cholesky(k + noise * torch.eye(50, dtype=torch.float64))
    w = torch.linalg.solve_triangular(chol, (z - p[n_ls + 2])[:, None], upper=False)
    objective = 0.5 * (w * w).sum() + chol.diagonal().log().sum()
    if prior:  # -log of: exp(-0.1 l^2 - 0.1 / l^2) each, Gamma(2, 1), Gamma(1.1, 30)
        objective = objective + (0.1 * ls ** 2 + 0.1 / ls ** 2).sum() \
            + (outputscale - torch.log(outputscale)) + (30 * noise - 0.1 * torch.log(noise))
    (objective / 50).backward()
    assert torch.allclose(closed, p.grad, rtol=1e-8, atol=1e-10)


def test_gp_prior_keeps_lengthscales_off_their_bounds():
    """30 noisy points in 16-D, 4 dimensions relevant: without the prior the irrelevant
    dimensions' lengthscales run to the upper bound (2); with it they stay nearer the box's
    width, and the spread of the lengthscales (which shapes TuRBO's trust region) shrinks."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(30, 16, generator=g, dtype=torch.float64)
    y = x[:, :4].sum(1) + 0.3 * torch.randn(30, generator=g, dtype=torch.float64)
    flat = GaussianProcess(noise_bounds=(0.05, 0.5)).fit(x, y).lengthscale
    held = GaussianProcess(noise_bounds=(0.05, 0.5), prior=True).fit(x, y).lengthscale
    assert float(held[4:].max()) < float(flat[4:].max()) - 0.1
    assert float(held.max() / held.min()) < float(flat.max() / flat.min())


def test_gp_posterior_in_blocks_is_the_posterior_at_once(gp_data):
    """The posterior over many points is computed in blocks of gp.chunk (cache-sized): the
    same as in one block, and as the differentiable path."""
    gp, _, x_test = gp_data
    chunk = gp.chunk
    try:
        gp.chunk = 7
        mean, var, v = gp.factor(x_test)
        gp.chunk = 10_000
        mean1, var1, v1 = gp.factor(x_test)
    finally:
        gp.chunk = chunk
    assert torch.allclose(mean, mean1) and torch.allclose(var, var1) and torch.allclose(v, v1)
    m2, v2 = gp.posterior(x_test.clone().requires_grad_(True), differentiable=True)
    assert torch.allclose(m2.detach(), mean * gp.y_std + gp.y_mean)
    assert torch.allclose(v2.detach(), var * gp.y_std ** 2)


def test_gp_posterior_gradient_in_closed_form(gp_data):
    """posterior(differentiable=True) backpropagates in closed form: the gradient autograd finds
    through the Matern formula and the triangular solve, at a training point too."""
    gp, x, x_test = gp_data
    points = torch.cat([x[:2], x_test[:6]])
    p1 = points.clone().requires_grad_(True)
    mean, var = gp.posterior(p1, differentiable=True)
    (mean.sum() + 3.0 * var.sqrt().sum()).backward()
    p2 = points.clone().requires_grad_(True)
    with torch.enable_grad():
        m2, v = gp._latent(p2)
        v2 = (gp.outputscale - (v * v).sum(0)).clamp_min(1e-12)
        (m2.sum() * gp.y_std + 3.0 * (v2 * gp.y_std ** 2).sqrt().sum()).backward()
    assert torch.allclose(mean, m2.detach() * gp.y_std + gp.y_mean)
    assert torch.allclose(p1.grad, p2.grad, rtol=1e-8, atol=1e-10)
    assert torch.autograd.gradcheck(lambda q: gp.posterior(q, differentiable=True),
                                    (x_test[:4].clone().requires_grad_(True),))


def test_gp_samples(gp_data):
    gp, _, x_test = gp_data
    draws = gp.sample(x_test, 2000, generator=torch.Generator().manual_seed(7))
    assert draws.shape == (2000, 200)
    mean, var = gp.posterior(x_test)
    # 2000 draws: the sample mean is within a few standard errors of the posterior mean
    assert bool(((draws.mean(0) - mean).abs() <= 5 * (var / 2000).sqrt() + 1e-6).all())
    again = gp.sample(x_test, 2000, generator=torch.Generator().manual_seed(7))
    assert torch.equal(draws, again)
    assert gp.sample(x_test[:5], 3).shape == (3, 5)


def test_gp_fantasy_shrinks_variance():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(40, 3, generator=g, dtype=torch.float64) * 0.5  # the data fill [0, 0.5]^3
    gp = GaussianProcess().fit(x, smooth(x))
    lengthscale = gp.lengthscale.clone()
    point = torch.full((1, 3), 0.9, dtype=torch.float64)
    mean_before, var_before = gp.posterior(point)
    gp.add_fantasy(point, mean_before)
    mean_after, var_after = gp.posterior(point)
    assert float(var_after) < 0.1 * float(var_before)
    assert float(var_after) < 0.05 * float(smooth(x).var())
    assert torch.allclose(mean_after, mean_before, atol=1e-3 * float(smooth(x).std()))
    assert torch.equal(gp.lengthscale, lengthscale)  # no refit


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback when CUDA is missing")
def test_pick_device_falls_back_to_cpu_with_a_warning(monkeypatch):
    from gml_ray.searchers.lamcts import tensors
    monkeypatch.setattr(tensors, "_warned_no_cuda", False)
    with pytest.warns(RuntimeWarning, match="enable_cuda"):
        assert pick_device(True) == torch.device("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pick_device(True) == torch.device("cpu")  # once per process
        assert pick_device(False) == torch.device("cpu")


def test_pick_device_false_never_warns():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pick_device(False) == torch.device("cpu")
