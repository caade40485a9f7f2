"""The coordinator's human-readable summary reports both evaluations of every round."""

from secagg import EvaluateResult
from transport._cli_transport import summary_text
from transport._records import RoundRecord, RunSummary


def test_summary_text_reports_server_and_federated_evaluation_per_round():
    def rec(r, fed, srv):
        return RoundRecord(server_round=r, round_id=r, status="completed", sampled=(0, 1),
                           contributors=(0, 1), server_evaluation=srv, federated_evaluation=fed)

    log = (
        rec(1, EvaluateResult(loss=0.5, metrics={"accuracy": 0.7}, num_examples=20, num_clients=2),
            EvaluateResult(loss=0.25, metrics={"accuracy": 0.8})),
        rec(2, EvaluateResult(loss=0.4, metrics={"accuracy": 0.75}, num_examples=20, num_clients=2),
            EvaluateResult(loss=0.125, metrics={"accuracy": 0.9})),
    )
    text = "\n".join(summary_text(RunSummary(backend="secagg+", rounds_completed=2, log=log)))
    for loss in ("0.5", "0.25", "0.4", "0.125"):
        assert f"evaluation: loss {loss}," in text
    assert text.count("server evaluation") == 2 and text.count("  federated evaluation") == 2
    assert "2 rounds completed with backend secagg+" in text
