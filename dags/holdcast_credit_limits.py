"""
### holdcast: credit limits and the auto-release threshold

Weekly. Recommends a credit limit per customer with open orders from its risk, payment behaviour and
usage (policy file, `credit_limits`): small increases for low-risk customers are approved within the
policy's bounds, larger or riskier changes go to the review queue; every recommendation is stored
with its reason in the warehouse table `credit_limit_recommendations`. Then simulates the
auto-release thresholds of the policy on past orders with known outcomes (no-touch rate, missed
holds, expected cost) and logs the table and plot to MLflow.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from include.dag_defaults import START_DATE, default_args


@dag(
    schedule="@weekly",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["holdcast", "policy"],
    default_args=default_args(),
    doc_md=__doc__,
)
def holdcast_credit_limits():
    @task
    def recommend_limits(*, logical_date=None) -> dict:
        from include import credit_limits, pipeline

        return credit_limits.recommend_limits(pipeline.resolve_as_of(logical_date))

    @task
    def simulate_thresholds(*, logical_date=None) -> dict:
        from include import pipeline, simulator

        return simulator.run_simulation(pipeline.resolve_as_of(logical_date))

    recommend_limits() >> simulate_thresholds()


holdcast_credit_limits()
