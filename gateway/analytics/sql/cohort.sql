-- The North West London integrated care pilot's first risk stratification
-- step: people with two or more emergency admissions in the 12 months before
-- as_at (the export's transactionTime) who, at as_at, have an open social
-- care case or live in a care home; one row per person, by practice.
--
-- Runs on the analysis tables derive.sql writes (or on the Parquet files:
-- docs/analytics.md), with SET VARIABLE as_at = TIMESTAMPTZ '...'.
--
-- Open social care case: a service episode whose status is active, onhold
-- or waitlist and whose period holds as_at. Current care-home residence: a
-- residence episode whose status is active or onhold (a resident in
-- hospital for a while) and whose period holds as_at.
WITH admissions AS (
    SELECT
        pseudonym,
        count(DISTINCT encounter_key) AS emergency_admissions,
        max(start_at) AS latest_admission
    FROM encounters
    WHERE emergency_admission
        AND start_at > getvariable('as_at') - INTERVAL 12 MONTH
        AND start_at <= getvariable('as_at')
    GROUP BY pseudonym
    HAVING count(DISTINCT encounter_key) >= 2
), support AS (
    SELECT pseudonym, 'social care' AS support
    FROM social_care_episodes
    WHERE status IN ('active', 'onhold', 'waitlist')
        AND (start_at IS NULL OR start_at <= getvariable('as_at'))
        AND (end_at IS NULL OR end_at > getvariable('as_at'))
    UNION
    SELECT pseudonym, 'care home' AS support
    FROM care_home_residence
    WHERE status IN ('active', 'onhold')
        AND (start_at IS NULL OR start_at <= getvariable('as_at'))
        AND (end_at IS NULL OR end_at > getvariable('as_at'))
)
SELECT
    coalesce(p.practice_ods, '(none)') AS practice_ods,
    a.pseudonym,
    a.emergency_admissions,
    a.latest_admission::DATE AS latest_admission,
    string_agg(DISTINCT s.support, ', ' ORDER BY s.support) AS support
FROM admissions AS a
JOIN support AS s USING (pseudonym)
LEFT JOIN people AS p USING (pseudonym)
GROUP BY ALL
ORDER BY practice_ods, a.pseudonym;
