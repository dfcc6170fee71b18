"""Share of wallet: observed share and headroom, and the Wallet Allocation Rule.

* :func:`share_of_wallet`: ``spend / wallet`` and the headroom left in the wallet.
* :func:`wallet_allocation_rule`: the share of wallet implied by a brand's rank among the
  brands a customer uses (Keiningham et al. 2011).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kamlib._scoring import clean_numeric, clip
from kamlib._validation import any_column_name, require_columns

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["share_of_wallet", "wallet_allocation_rule"]


@any_column_name("share_of_wallet")
def share_of_wallet(
    df: DataFrame, *, spend_col: str = "spend", wallet_col: str = "wallet"
) -> DataFrame:
    r"""Add the observed share of wallet and the wallet headroom.

    * ``share_of_wallet`` :math:`= \text{spend} / \text{wallet}`; null where the wallet is
      null, NaN, ±inf or <= 0, or the spend is null, NaN or ±inf. Spend above the wallet
      gives a share above 1 and negative spend (net refunds) a negative share: both are
      kept, not clipped, so data problems stay visible.
    * ``wallet_headroom`` :math:`= \max(\text{wallet} - \text{spend}, 0)`: spend still
      available to win; null where spend or wallet is null (or NaN, ±inf).

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        One row per account (per period) with spend and estimated wallet.
    spend_col, wallet_col : str
        Our spend with the account and the account's total category spend (wallet).

    Returns
    -------
    pyspark.sql.DataFrame
        The input with ``share_of_wallet`` and ``wallet_headroom`` added.

    References
    ----------
    Du, Kamakura & Mela, *Size and share of customer wallet*, Journal of Marketing 71 (2007).

    Examples
    --------
    >>> df = spark.createDataFrame([("a", 30.0, 120.0), ("b", 50.0, 0.0), ("c", None, 10.0)],
    ...                            "account_id string, spend double, wallet double")
    >>> for r in share_of_wallet(df).orderBy("account_id").collect():
    ...     print(r.account_id, r.share_of_wallet, r.wallet_headroom)
    a 0.25 90.0
    b None 0.0
    c None None
    """
    from pyspark.sql import functions as F

    func = "share_of_wallet"
    require_columns(df, func, spend_col=(spend_col, "numeric"), wallet_col=(wallet_col, "numeric"))
    spend = clean_numeric(df, spend_col).cast("double")
    wallet = clean_numeric(df, wallet_col).cast("double")
    share = F.when(wallet > 0, F.try_divide(spend, wallet))
    headroom = clip(wallet - spend, low=0.0)
    return df.withColumns({"share_of_wallet": share, "wallet_headroom": headroom})


def wallet_allocation_rule(
    df: DataFrame, *, rank_col: str = "brand_rank", n_brands_col: str = "n_brands"
) -> DataFrame:
    r"""Add the Wallet Allocation Rule share of wallet implied by a brand's rank.

    .. math:: \text{estimated\_share\_of\_wallet} = \left(1 - \frac{r}{n + 1}\right)\frac{2}{n}

    with :math:`r` the rank of our brand among the :math:`n` brands the customer uses
    (1 = preferred). Over ranks :math:`1..n` the shares sum to 1. Null where :math:`r < 1`,
    :math:`r > n`, :math:`n < 1`, either is null or NaN, or either is not a whole number.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        One row per (customer, brand) or per account.
    rank_col, n_brands_col : str
        Numeric rank of the brand and number of brands used.

    Returns
    -------
    pyspark.sql.DataFrame
        The input with ``estimated_share_of_wallet`` added.

    References
    ----------
    Keiningham, Aksoy, Buoye & Cooil, *Customer loyalty isn't enough. Grow your share of
    wallet*, Harvard Business Review 89(10) (2011); Keiningham et al., *The Wallet Allocation
    Rule*, Journal of Service Research (2015).

    Examples
    --------
    >>> df = spark.createDataFrame([(1, 3), (2, 3), (3, 3), (4, 3)],
    ...                            "brand_rank int, n_brands int")
    >>> [None if r[0] is None else round(r[0], 4) for r in
    ...  wallet_allocation_rule(df).select("estimated_share_of_wallet").collect()]
    [0.5, 0.3333, 0.1667, None]
    """
    from pyspark.sql import functions as F

    func = "wallet_allocation_rule"
    require_columns(
        df, func, rank_col=(rank_col, "numeric"), n_brands_col=(n_brands_col, "numeric")
    )
    rank = clean_numeric(df, rank_col).cast("double")
    n = clean_numeric(df, n_brands_col).cast("double")
    valid = (rank >= 1) & (n >= 1) & (rank <= n) & (rank % 1.0 == 0.0) & (n % 1.0 == 0.0)
    estimate = (F.lit(1.0) - F.try_divide(rank, n + 1.0)) * F.try_divide(F.lit(2.0), n)
    return df.withColumn("estimated_share_of_wallet", F.when(valid, estimate))
