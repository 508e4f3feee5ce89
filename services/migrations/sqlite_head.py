"""The schema the migrations build on SQLite at :data:`REVISION`, as SQLite stores it.

``migrate`` creates a new SQLite database from it, in one transaction, instead of
importing Alembic and running every migration (a fifth of a second of a first
``start``). Generated; tests/common/test_sqlite_head.py checks it against the
migrations. After adding a migration, write it again:

    python -c "from services.common.database import write_sqlite_head; write_sqlite_head()"
"""

REVISION = "0016_stored_revisions"

STATEMENTS: tuple[str, ...] = (
    (
        'CREATE TABLE alembic_version (\n'
        '\tversion_num VARCHAR(32) NOT NULL, \n'
        '\tCONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)\n'
        ')'
    ),
    (
        'CREATE TABLE calculated_sessions (\n'
        '\tdate DATE NOT NULL, \n'
        '\ttickers INTEGER NOT NULL, \n'
        '\tlookback_start DATE NOT NULL, \n'
        '\tcalculated_at DATETIME NOT NULL, \n'
        '\tPRIMARY KEY (date)\n'
        ')'
    ),
    (
        'CREATE TABLE closed_trades (\n'
        '\tfill_id INTEGER NOT NULL, \n'
        '\tuser_id VARCHAR(64) NOT NULL, \n'
        '\tdry_run BOOLEAN NOT NULL, \n'
        '\tticker VARCHAR(12) NOT NULL, \n'
        '\topened_on DATE NOT NULL, \n'
        '\tclosed_on DATE NOT NULL, \n'
        '\tquantity BIGINT NOT NULL, \n'
        '\tcost BIGINT NOT NULL, \n'
        '\tproceeds BIGINT NOT NULL, \n'
        '\tpnl BIGINT NOT NULL, \n'
        '\tPRIMARY KEY (fill_id), \n'
        '\tFOREIGN KEY(fill_id) REFERENCES fills (id)\n'
        ')'
    ),
    (
        'CREATE TABLE collected_sessions (\n'
        '\tdate DATE NOT NULL, \n'
        '\tprovider VARCHAR(32) NOT NULL, \n'
        '\tstock_rows INTEGER NOT NULL, \n'
        '\tprice_rows INTEGER NOT NULL, \n'
        '\tfundamental_rows INTEGER NOT NULL, \n'
        '\trejected_rows INTEGER NOT NULL, \n'
        "\tcollected_at DATETIME NOT NULL, revision INTEGER DEFAULT '1' NOT NULL, \n"
        '\tPRIMARY KEY (date)\n'
        ')'
    ),
    (
        'CREATE TABLE console_audit (\n'
        '\tid INTEGER NOT NULL, \n'
        '\tat DATETIME NOT NULL, \n'
        '\tuser_id VARCHAR(64) NOT NULL, \n'
        '\tdry_run BOOLEAN NOT NULL, \n'
        '\taction VARCHAR(32) NOT NULL, \n'
        '\tdetail JSON, \n'
        '\tclient VARCHAR(300) NOT NULL, \n'
        '\tstatus_code INTEGER NOT NULL, \n'
        '\toutcome TEXT, \n'
        '\tPRIMARY KEY (id)\n'
        ')'
    ),
    (
        'CREATE TABLE corporate_actions (\n'
        '\tdate DATE NOT NULL, \n'
        '\tticker VARCHAR(12) NOT NULL, \n'
        '\tratio FLOAT NOT NULL, \n'
        '\tPRIMARY KEY (date, ticker)\n'
        ')\n'
        ' WITHOUT ROWID\n'
        '\n'
    ),
    (
        'CREATE TABLE daily_prices (\n'
        '\tdate DATE NOT NULL, \n'
        '\tticker VARCHAR(12) NOT NULL, \n'
        '\topen BIGINT NOT NULL, \n'
        '\thigh BIGINT NOT NULL, \n'
        '\tlow BIGINT NOT NULL, \n'
        '\tclose BIGINT NOT NULL, \n'
        '\tvolume BIGINT NOT NULL, \n'
        '\tvalue BIGINT NOT NULL, \n'
        '\tchange_pct FLOAT NOT NULL, \n'
        '\tmarket_cap BIGINT NOT NULL, \n'
        '\tmarket VARCHAR(16) NOT NULL, \n'
        '\thalted BOOLEAN NOT NULL, \n'
        '\tPRIMARY KEY (date, ticker)\n'
        ')\n'
        ' WITHOUT ROWID\n'
        '\n'
    ),
    (
        'CREATE TABLE fills (\n'
        '\tid INTEGER NOT NULL, \n'
        '\torder_id INTEGER NOT NULL, \n'
        '\tfill_key VARCHAR(80) NOT NULL, \n'
        '\tuser_id VARCHAR(64) NOT NULL, \n'
        '\tticker VARCHAR(12) NOT NULL, \n'
        '\tside VARCHAR(4) NOT NULL, \n'
        '\tquantity BIGINT NOT NULL, \n'
        '\tprice BIGINT NOT NULL, \n'
        '\tcommission BIGINT NOT NULL, \n'
        '\ttax BIGINT NOT NULL, \n'
        '\ttrade_date DATE NOT NULL, \n'
        '\tsettles_on DATE NOT NULL, \n'
        '\tfilled_at DATETIME NOT NULL, \n'
        '\tdry_run BOOLEAN NOT NULL, \n'
        '\tPRIMARY KEY (id), \n'
        '\tCONSTRAINT uq_fills_fill_key UNIQUE (user_id, dry_run, fill_key), \n'
        '\tFOREIGN KEY(order_id) REFERENCES orders (id)\n'
        ')'
    ),
    (
        'CREATE TABLE financial_indicators (\n'
        '\tdate DATE NOT NULL, \n'
        '\tticker VARCHAR(12) NOT NULL, \n'
        '\tper FLOAT, \n'
        '\tpbr FLOAT, \n'
        '\teps FLOAT, \n'
        '\tbps FLOAT, \n'
        '\tdividend_yield FLOAT, \n'
        '\troe FLOAT, \n'
        '\tearnings_positive BOOLEAN, \n'
        '\tmarket_cap BIGINT, \n'
        '\tmarket_cap_rank INTEGER, \n'
        '\tPRIMARY KEY (date, ticker)\n'
        ')\n'
        ' WITHOUT ROWID\n'
        '\n'
    ),
    (
        'CREATE TABLE fundamentals (\n'
        '\tdate DATE NOT NULL, \n'
        '\tticker VARCHAR(12) NOT NULL, \n'
        '\tbps BIGINT NOT NULL, \n'
        '\tper FLOAT NOT NULL, \n'
        '\tpbr FLOAT NOT NULL, \n'
        '\teps BIGINT NOT NULL, \n'
        '\tdiv FLOAT NOT NULL, \n'
        '\tdps BIGINT NOT NULL, \n'
        '\tPRIMARY KEY (date, ticker)\n'
        ')\n'
        ' WITHOUT ROWID\n'
        '\n'
    ),
    (
        'CREATE TABLE "job_runs" (\n'
        '\tid INTEGER NOT NULL, \n'
        '\tjob_name VARCHAR(64) NOT NULL, \n'
        '\tuser_id VARCHAR(64) NOT NULL, \n'
        '\tscheduled_for DATETIME NOT NULL, \n'
        '\ttrading_date DATE, \n'
        '\torigin VARCHAR(16) NOT NULL, \n'
        '\tdry_run BOOLEAN NOT NULL, \n'
        '\toutcome VARCHAR(16) NOT NULL, \n'
        '\tstarted_at DATETIME NOT NULL, \n'
        '\tfinished_at DATETIME, \n'
        '\thost VARCHAR(255) NOT NULL, \n'
        '\tpid INTEGER NOT NULL, \n'
        '\terror TEXT, \n'
        '\treason TEXT, \n'
        '\tsummary JSON, \n'
        "\tattempt INTEGER DEFAULT '1' NOT NULL, \n"
        '\tlease_until DATETIME, instance_id VARCHAR(32), \n'
        '\tPRIMARY KEY (id), \n'
        '\tCONSTRAINT uq_job_runs_fire UNIQUE (job_name, user_id, dry_run, scheduled_for, attempt)\n'
        ')'
    ),
    (
        'CREATE TABLE market_indices (\n'
        '\tdate DATE NOT NULL, \n'
        '\tname VARCHAR(16) NOT NULL, \n'
        '\tclose FLOAT NOT NULL, \n'
        '\tPRIMARY KEY (date, name)\n'
        ')\n'
        ' WITHOUT ROWID\n'
        '\n'
    ),
    (
        'CREATE TABLE orders (\n'
        '\tid INTEGER NOT NULL, \n'
        '\tuser_id VARCHAR(64) NOT NULL, \n'
        '\tclient_order_id VARCHAR(120) NOT NULL, \n'
        '\tbroker VARCHAR(16) NOT NULL, \n'
        '\tbroker_order_id VARCHAR(64), \n'
        '\ttrading_date DATE NOT NULL, \n'
        '\tticker VARCHAR(12) NOT NULL, \n'
        '\tside VARCHAR(4) NOT NULL, \n'
        '\torder_type VARCHAR(8) NOT NULL, \n'
        '\tquantity BIGINT NOT NULL, \n'
        '\tlimit_price BIGINT, \n'
        '\tstatus VARCHAR(20) NOT NULL, \n'
        '\tfilled_quantity BIGINT NOT NULL, \n'
        '\treserved_cash BIGINT NOT NULL, \n'
        '\treason VARCHAR(300) NOT NULL, \n'
        '\tdry_run BOOLEAN NOT NULL, \n'
        '\tcreated_at DATETIME NOT NULL, \n'
        '\tupdated_at DATETIME NOT NULL, sent_at DATETIME, \n'
        '\tPRIMARY KEY (id), \n'
        '\tCONSTRAINT uq_orders_client_order_id UNIQUE (user_id, client_order_id)\n'
        ')'
    ),
    (
        'CREATE TABLE paper_accounts (\n'
        '\tuser_id VARCHAR(64) NOT NULL, \n'
        '\tinitial_cash BIGINT NOT NULL, \n'
        '\tcash BIGINT NOT NULL, \n'
        '\topened_at DATETIME NOT NULL, bars_settled_through DATE, \n'
        '\tPRIMARY KEY (user_id)\n'
        ')'
    ),
    (
        'CREATE TABLE portfolio_snapshots (\n'
        '\tuser_id VARCHAR(64) NOT NULL, \n'
        '\tdry_run BOOLEAN NOT NULL, \n'
        '\ttaken_at DATETIME NOT NULL, \n'
        '\ttrading_date DATE NOT NULL, \n'
        '\tcash BIGINT NOT NULL, \n'
        '\tsettled_cash BIGINT NOT NULL, \n'
        '\tmarket_value BIGINT NOT NULL, \n'
        '\tequity BIGINT NOT NULL, \n'
        '\texposure FLOAT NOT NULL, \n'
        '\tunrealised_pnl BIGINT NOT NULL, \n'
        '\tpositions INTEGER NOT NULL, \n'
        '\tprices_observed BOOLEAN NOT NULL, \n'
        '\tPRIMARY KEY (user_id, dry_run, taken_at)\n'
        ')'
    ),
    (
        'CREATE TABLE positions (\n'
        '\tuser_id VARCHAR(64) NOT NULL, \n'
        '\tdry_run BOOLEAN NOT NULL, \n'
        '\tticker VARCHAR(12) NOT NULL, \n'
        '\tquantity BIGINT NOT NULL, \n'
        '\tcost BIGINT NOT NULL, \n'
        '\topened_on DATE NOT NULL, \n'
        '\thigh_water BIGINT NOT NULL, \n'
        '\tPRIMARY KEY (user_id, dry_run, ticker)\n'
        ')'
    ),
    (
        'CREATE TABLE queued_runs (\n'
        '\tid INTEGER NOT NULL, \n'
        '\tuser_id VARCHAR(64) NOT NULL, \n'
        '\tdry_run BOOLEAN NOT NULL, \n'
        '\tjob_name VARCHAR(64) NOT NULL, \n'
        '\ttrading_date DATE, \n'
        '\trequested_at DATETIME NOT NULL, \n'
        '\trequested_by VARCHAR(300) NOT NULL, \n'
        '\tstatus VARCHAR(16) NOT NULL, \n'
        '\trun_id INTEGER, \n'
        '\tfinished_at DATETIME, \n'
        '\tPRIMARY KEY (id)\n'
        ')'
    ),
    (
        'CREATE TABLE replay_settings (\n'
        '\tuser_id VARCHAR(64) NOT NULL, \n'
        '\tsettings JSON NOT NULL, \n'
        '\trecorded_at DATETIME NOT NULL, \n'
        '\tPRIMARY KEY (user_id)\n'
        ')'
    ),
    (
        'CREATE TABLE risk_breaches (\n'
        '\tid INTEGER NOT NULL, \n'
        '\tuser_id VARCHAR(64) NOT NULL, \n'
        '\tdry_run BOOLEAN NOT NULL, \n'
        '\ttrading_date DATE NOT NULL, \n'
        '\tlimit_name VARCHAR(48) NOT NULL, \n'
        '\tsubject VARCHAR(16) NOT NULL, \n'
        '\tvalue FLOAT NOT NULL, \n'
        '\tthreshold FLOAT NOT NULL, \n'
        '\taction VARCHAR(16) NOT NULL, \n'
        '\tchecked_at DATETIME NOT NULL, \n'
        '\tchecked_by VARCHAR(32) NOT NULL, \n'
        '\tmetrics JSON NOT NULL, \n'
        '\tPRIMARY KEY (id), \n'
        '\tCONSTRAINT uq_risk_breaches_once_a_day UNIQUE (user_id, dry_run, trading_date, limit_name, '
        'subject)\n'
        ')'
    ),
    (
        'CREATE TABLE scheduler_heartbeats (\n'
        '\tinstance_id VARCHAR(32) NOT NULL, \n'
        '\tuser_id VARCHAR(64) NOT NULL, \n'
        '\tdry_run BOOLEAN NOT NULL, \n'
        '\thost VARCHAR(255) NOT NULL, \n'
        '\tpid INTEGER NOT NULL, \n'
        '\tstarted_at DATETIME NOT NULL, \n'
        '\tbeat_at DATETIME NOT NULL, \n'
        '\tPRIMARY KEY (instance_id)\n'
        ')'
    ),
    (
        'CREATE TABLE signal_runs (\n'
        '\tuser_id VARCHAR(64) NOT NULL, \n'
        '\tdry_run BOOLEAN NOT NULL, \n'
        '\ttrading_date DATE NOT NULL, \n'
        '\twatchlist_date DATE NOT NULL, \n'
        '\tentries INTEGER NOT NULL, \n'
        '\texits INTEGER NOT NULL, \n'
        '\torders INTEGER NOT NULL, \n'
        '\tsizing VARCHAR(16) NOT NULL, \n'
        '\tcreated_at DATETIME NOT NULL, \n'
        '\tPRIMARY KEY (user_id, dry_run, trading_date)\n'
        ')'
    ),
    (
        'CREATE TABLE signals (\n'
        '\tuser_id VARCHAR(64) NOT NULL, \n'
        '\tdry_run BOOLEAN NOT NULL, \n'
        '\ttrading_date DATE NOT NULL, \n'
        '\tticker VARCHAR(12) NOT NULL, \n'
        '\tkind VARCHAR(8) NOT NULL, \n'
        '\tsource VARCHAR(16) NOT NULL, \n'
        '\treason VARCHAR(300) NOT NULL, \n'
        '\tstrength FLOAT NOT NULL, \n'
        '\treference_price BIGINT NOT NULL, \n'
        '\tquantity BIGINT NOT NULL, \n'
        '\tclient_order_id VARCHAR(120), \n'
        '\tcreated_at DATETIME NOT NULL, \n'
        '\tPRIMARY KEY (user_id, dry_run, trading_date, ticker, kind)\n'
        ')'
    ),
    (
        'CREATE TABLE stocks (\n'
        '\tticker VARCHAR(12) NOT NULL, \n'
        '\tname VARCHAR(200) NOT NULL, \n'
        '\tmarket VARCHAR(16) NOT NULL, \n'
        '\tupdated_on DATE NOT NULL, \n'
        '\tPRIMARY KEY (ticker)\n'
        ')'
    ),
    (
        'CREATE TABLE technical_indicators (\n'
        '\tdate DATE NOT NULL, \n'
        '\tticker VARCHAR(12) NOT NULL, \n'
        '\tsma_5 FLOAT, \n'
        '\tsma_20 FLOAT, \n'
        '\tsma_60 FLOAT, \n'
        '\tsma_120 FLOAT, \n'
        '\tema_12 FLOAT, \n'
        '\tema_26 FLOAT, \n'
        '\tema_20 FLOAT, \n'
        '\trsi_14 FLOAT, \n'
        '\tmacd FLOAT, \n'
        '\tmacd_signal FLOAT, \n'
        '\tmacd_hist FLOAT, \n'
        '\tbb_upper FLOAT, \n'
        '\tbb_middle FLOAT, \n'
        '\tbb_lower FLOAT, \n'
        '\tatr_14 FLOAT, \n'
        '\tstoch_k FLOAT, \n'
        '\tstoch_d FLOAT, \n'
        '\tvolume_ratio_20 FLOAT, \n'
        '\tstate_macd_fast FLOAT, \n'
        '\tstate_macd_slow FLOAT, \n'
        '\tstate_rsi_gain FLOAT, \n'
        '\tstate_rsi_loss FLOAT, \n'
        '\tPRIMARY KEY (date, ticker)\n'
        ')\n'
        ' WITHOUT ROWID\n'
        '\n'
    ),
    (
        'CREATE TABLE trading_halts (\n'
        '\tuser_id VARCHAR(64) NOT NULL, \n'
        '\thalted BOOLEAN NOT NULL, \n'
        '\treason VARCHAR(300) NOT NULL, \n'
        '\thalted_at DATETIME NOT NULL, \n'
        '\thalted_by VARCHAR(32) NOT NULL, \n'
        '\tresumed_at DATETIME, \n'
        '\tresumed_by VARCHAR(32), \n'
        '\tbaseline_at DATETIME, \n'
        '\tbaseline_equity BIGINT, live_baseline_equity BIGINT, \n'
        '\tPRIMARY KEY (user_id)\n'
        ')'
    ),
    (
        'CREATE TABLE watchlist_entries (\n'
        '\tuser_id VARCHAR(64) NOT NULL, \n'
        '\tdate DATE NOT NULL, \n'
        '\tticker VARCHAR(12) NOT NULL, \n'
        '\trank INTEGER NOT NULL, \n'
        '\tscore FLOAT NOT NULL, \n'
        '\ttrend FLOAT NOT NULL, \n'
        '\tmomentum FLOAT NOT NULL, \n'
        '\tvolatility FLOAT NOT NULL, \n'
        '\tliquidity FLOAT NOT NULL, \n'
        '\tvalue FLOAT NOT NULL, \n'
        '\tclose BIGINT NOT NULL, \n'
        '\tentered_on DATE NOT NULL, \n'
        '\tentry_close BIGINT NOT NULL, \n'
        '\tPRIMARY KEY (user_id, date, ticker)\n'
        ')'
    ),
    (
        'CREATE TABLE watchlist_runs (\n'
        '\tuser_id VARCHAR(64) NOT NULL, \n'
        '\tdate DATE NOT NULL, \n'
        '\tsize INTEGER NOT NULL, \n'
        '\teligible INTEGER NOT NULL, \n'
        '\tPRIMARY KEY (user_id, date)\n'
        ')'
    ),
    (
        'CREATE INDEX ix_closed_trades_user_id ON closed_trades (user_id)'
    ),
    (
        'CREATE INDEX ix_console_audit_account ON console_audit (user_id, dry_run, id)'
    ),
    (
        'CREATE INDEX ix_fills_trade_date ON fills (user_id, dry_run, trade_date)'
    ),
    (
        'CREATE INDEX ix_job_runs_job_scheduled ON job_runs (job_name, scheduled_for)'
    ),
    (
        "CREATE INDEX ix_job_runs_lease ON job_runs (lease_until) WHERE outcome = 'running'"
    ),
    (
        'CREATE INDEX ix_orders_open ON orders (user_id, dry_run, status)'
    ),
    (
        'CREATE INDEX ix_queued_runs_account_status ON queued_runs (user_id, dry_run, status)'
    ),
    (
        'CREATE INDEX ix_scheduler_heartbeats_account ON scheduler_heartbeats (user_id, dry_run, beat_at)'
    ),
    (
        'CREATE INDEX ix_snapshots_equity ON portfolio_snapshots (user_id, dry_run, equity)'
    ),
)
