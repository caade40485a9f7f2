import sys

import numpy as np
import pytest

import secagg


def test_import_does_not_pull_in_torch_or_sklearn():
    import subprocess

    code = "import sys, secagg, dp; print('torch' in sys.modules, 'sklearn' in sys.modules, 'flwr' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_sklearn_logistic_regression_round_trip_and_prediction():
    sklearn = pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression

    assert sklearn
    model = LogisticRegression()
    secagg.init_sklearn_linear(model, n_features=4, classes=[0, 1, 2])
    params = secagg.get_sklearn_parameters(model)
    assert [p.shape for p in params] == [(3, 4), (3,)]
    params[0][1, 2] = 5.0
    secagg.set_sklearn_parameters(model, params)
    assert model.predict(np.array([[0.0, 0.0, 1.0, 0.0]]))[0] == 1
    got = secagg.get_sklearn_parameters(model)
    got[0][0, 0] = 99.0  # a copy, not a view
    assert model.coef_[0, 0] == 0.0
    with pytest.raises(ValueError, match=r"coef_ must have shape \(3, 4\)"):
        secagg.set_sklearn_parameters(model, [np.zeros((2, 4)), np.zeros(3)])
    with pytest.raises(ValueError, match="arrays must be"):
        secagg.set_sklearn_parameters(model, [np.zeros((3, 4))])
    with pytest.raises(ValueError, match="fitted or initialised"):
        secagg.get_sklearn_parameters(LogisticRegression())


def test_sklearn_fitted_binary_model_without_intercept():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import SGDClassifier

    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    model = SGDClassifier(fit_intercept=False, random_state=0).fit(x, [0, 1, 0, 1])
    params = secagg.get_sklearn_parameters(model)
    assert len(params) == 1 and params[0].shape == (1, 2)
    secagg.set_sklearn_parameters(model, [-params[0]])
    assert list(model.predict(x)) == [1, 0, 1, 0]


@pytest.mark.parametrize("name", ["LinearRegression", "Ridge", "Lasso"])
def test_sklearn_single_output_regressor_round_trip(name):
    # these keep a scalar intercept_; get sends it as a 1-element array, set takes it back
    pytest.importorskip("sklearn")
    import sklearn.linear_model

    x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [1.0, 3.0]])
    model = getattr(sklearn.linear_model, name)().fit(x, x @ [1.0, -2.0] + 0.5)
    params = secagg.get_sklearn_parameters(model)
    assert [p.shape for p in params] == [(2,), (1,)]
    secagg.set_sklearn_parameters(model, [params[0], params[1] + 1.0])
    assert np.ndim(model.intercept_) == 0
    np.testing.assert_allclose(secagg.get_sklearn_parameters(model)[1], params[1] + 1.0)
    np.testing.assert_allclose(model.predict(x[:1]), x[:1] @ params[0] + params[1] + 1.0)


def test_torch_state_dict_round_trip():
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    arrays = secagg.get_torch_parameters(net)
    assert len(arrays) == len(net.state_dict())  # buffers included (running stats, counter)
    new = [a + 1 if a.dtype.kind == "f" else a for a in arrays]
    secagg.set_torch_parameters(net, new)
    for a, t in zip(new, net.state_dict().values(), strict=True):
        np.testing.assert_array_equal(a, t.numpy())
    trainable = secagg.get_torch_parameters(net, trainable_only=True)
    assert len(trainable) == 6
    secagg.set_torch_parameters(net, [np.zeros_like(a) for a in trainable], trainable_only=True)
    assert float(net[0].weight.detach().abs().sum()) == 0.0
    with pytest.raises(ValueError, match="must have shape"):
        secagg.set_torch_parameters(net, [np.zeros((9, 9))] + arrays[1:])


def test_torch_bfloat16_model_round_trip():
    # NumPy has no bfloat16: the arrays are float32 and the setters convert back
    torch = pytest.importorskip("torch")
    net = torch.nn.Linear(3, 2).to(torch.bfloat16)
    for trainable_only in (False, True):
        arrays = secagg.get_torch_parameters(net, trainable_only=trainable_only)
        assert [a.dtype for a in arrays] == [np.float32, np.float32]
        secagg.set_torch_parameters(net, [a + 1 for a in arrays], trainable_only=trainable_only)
        assert net.weight.dtype == torch.bfloat16
        expect = torch.from_numpy(arrays[0] + 1).to(torch.bfloat16).float().numpy()
        np.testing.assert_array_equal(net.weight.float().detach().numpy(), expect)
    state = net.state_dict()
    back = secagg.arrays_to_torch_state(secagg.torch_state_to_arrays(state), state)
    assert all(torch.equal(back[k], state[k]) for k in state)
