-- The SQL step after the views: what a ViewDefinition cannot say.
--
-- Reads the tables the shipped views fill (schema "views": people,
-- organisations, encounters, conditions, social_care_episodes,
-- care_home_residence) and writes the analysis tables of the same names in
-- the main schema, plus long_term_condition_codes and long_term_conditions.
-- Needs the variable as_at, the export's transactionTime:
--   SET VARIABLE as_at = TIMESTAMPTZ '2026-12-01T00:00:00Z';
-- and the session time zone Europe/London (SET TimeZone = 'Europe/London'),
-- which dates without an offset and the days of a stay are counted in.
-- docs/analytics.md explains each column.

-- The long-term conditions flagged, as SNOMED CT concepts matched exactly
-- (no terminology server: a descendant not listed is not flagged).
CREATE OR REPLACE TABLE long_term_condition_codes AS
SELECT * FROM (VALUES
    ('diabetes', '73211009', 'Diabetes mellitus'),
    ('diabetes', '46635009', 'Type 1 diabetes mellitus'),
    ('diabetes', '44054006', 'Type 2 diabetes mellitus'),
    ('copd', '13645005', 'Chronic obstructive lung disease'),
    ('asthma', '195967001', 'Asthma'),
    ('heart_failure', '84114007', 'Heart failure'),
    ('heart_failure', '42343007', 'Congestive heart failure'),
    ('dementia', '52448006', 'Dementia'),
    ('dementia', '26929004', 'Alzheimer''s disease'),
    ('dementia', '429998004', 'Vascular dementia'),
    ('hypertension', '38341003', 'Hypertensive disorder'),
    ('hypertension', '59621000', 'Essential hypertension'),
    ('chronic_kidney_disease', '709044004', 'Chronic kidney disease'),
    ('chronic_kidney_disease', '431855005', 'Chronic kidney disease stage 1'),
    ('chronic_kidney_disease', '431856006', 'Chronic kidney disease stage 2'),
    ('chronic_kidney_disease', '433144002', 'Chronic kidney disease stage 3'),
    ('chronic_kidney_disease', '431857002', 'Chronic kidney disease stage 4'),
    ('chronic_kidney_disease', '433146000', 'Chronic kidney disease stage 5')
) AS codes(long_term_condition, code, display);

-- People: age in whole years at as_at from the birth month (the birthday
-- counted from the first of the month, so an age may be reached up to a
-- month early), in bands; the practice's ODS code from the organisations
-- view when the Patient refers to the practice by id.
CREATE OR REPLACE TABLE people AS
WITH born AS (
    SELECT
        p.*,
        TRY_CAST(substr(p.birth_month, 1, 4) AS INTEGER) AS birth_year,
        TRY_CAST(substr(p.birth_month, 6, 2) AS INTEGER) AS birth_month_number
    FROM views.people AS p
), aged AS (
    SELECT
        born.*,
        year(getvariable('as_at')) - birth_year
            - CASE WHEN month(getvariable('as_at')) < birth_month_number THEN 1 ELSE 0 END AS age
    FROM born
)
SELECT
    a.pseudonym,
    a.birth_month,
    a.age,
    CASE
        WHEN a.age IS NULL THEN NULL
        WHEN a.age < 5 THEN '0-4'
        WHEN a.age < 18 THEN '5-17'
        WHEN a.age < 45 THEN '18-44'
        WHEN a.age < 65 THEN '45-64'
        WHEN a.age < 75 THEN '65-74'
        WHEN a.age < 85 THEN '75-84'
        ELSE '85+'
    END AS age_band,
    a.sex,
    a.postcode_district,
    a.borough,
    coalesce(a.practice_ods, o.ods_code) AS practice_ods
FROM aged AS a
LEFT JOIN views.organisations AS o ON o.organisation_key = a.practice_key;

CREATE OR REPLACE TABLE organisations AS
SELECT * FROM views.organisations;

-- Encounters: typed start and end, whether it is an emergency admission
-- (NHS Data Dictionary admission methods 21-25, 2A-2D and 28, on an
-- encounter neither cancelled nor only planned), and the length of stay in
-- days (London dates; 0 for a same-day discharge; none while open).
CREATE OR REPLACE TABLE encounters AS
SELECT
    e.pseudonym,
    e.encounter_key,
    e.status,
    e.class,
    e.admission_method,
    e.admission_method_display,
    e.admit_source,
    e.start,
    e."end",
    TRY_CAST(e.start AS TIMESTAMPTZ) AS start_at,
    TRY_CAST(e."end" AS TIMESTAMPTZ) AS end_at,
    coalesce(
        e.admission_method IN ('21', '22', '23', '24', '25', '2A', '2B', '2C', '2D', '28')
            AND e.status NOT IN ('cancelled', 'planned'),
        false
    ) AS emergency_admission,
    date_diff(
        'day', TRY_CAST(e.start AS TIMESTAMPTZ)::DATE, TRY_CAST(e."end" AS TIMESTAMPTZ)::DATE
    ) AS length_of_stay_days,
    coalesce(e.provider_ods, o.ods_code) AS provider_ods
FROM views.encounters AS e
LEFT JOIN views.organisations AS o ON o.organisation_key = e.provider_key;

-- Conditions: each coding with the long-term condition its SNOMED CT code
-- is, if any.
CREATE OR REPLACE TABLE conditions AS
SELECT c.*, l.long_term_condition
FROM views.conditions AS c
LEFT JOIN long_term_condition_codes AS l
    ON c.system = 'http://snomed.info/sct' AND c.code = l.code;

-- One row per person: a flag per long-term condition they have on record,
-- leaving out conditions entered in error or refuted and those inactive,
-- resolved or in remission.
CREATE OR REPLACE TABLE long_term_conditions AS
WITH standing AS (
    SELECT DISTINCT pseudonym, long_term_condition
    FROM conditions
    WHERE long_term_condition IS NOT NULL
        AND coalesce(verification_status, '') NOT IN ('entered-in-error', 'refuted')
        AND coalesce(clinical_status, 'active') IN ('active', 'recurrence', 'relapse')
)
SELECT
    p.pseudonym,
    coalesce(bool_or(s.long_term_condition = 'diabetes'), false) AS diabetes,
    coalesce(bool_or(s.long_term_condition = 'copd'), false) AS copd,
    coalesce(bool_or(s.long_term_condition = 'asthma'), false) AS asthma,
    coalesce(bool_or(s.long_term_condition = 'heart_failure'), false) AS heart_failure,
    coalesce(bool_or(s.long_term_condition = 'dementia'), false) AS dementia,
    coalesce(bool_or(s.long_term_condition = 'hypertension'), false) AS hypertension,
    coalesce(bool_or(s.long_term_condition = 'chronic_kidney_disease'), false)
        AS chronic_kidney_disease,
    count(s.long_term_condition) AS long_term_condition_count
FROM views.people AS p
LEFT JOIN standing AS s USING (pseudonym)
GROUP BY p.pseudonym;

-- Social care services and care-home stays: typed start and end, the ODS
-- code of the council or home from the organisations view when referred to
-- by id.
CREATE OR REPLACE TABLE social_care_episodes AS
SELECT
    s.pseudonym,
    s.episode_key,
    s.service_type,
    s.service_type_display,
    s.status,
    s.start,
    s."end",
    TRY_CAST(s.start AS TIMESTAMPTZ) AS start_at,
    TRY_CAST(s."end" AS TIMESTAMPTZ) AS end_at,
    coalesce(s.council_ods, o.ods_code) AS council_ods
FROM views.social_care_episodes AS s
LEFT JOIN views.organisations AS o ON o.organisation_key = s.council_key;

CREATE OR REPLACE TABLE care_home_residence AS
SELECT
    r.pseudonym,
    r.episode_key,
    coalesce(r.home_ods, o.ods_code) AS home_ods,
    r.care_type,
    r.status,
    r.start,
    r."end",
    TRY_CAST(r.start AS TIMESTAMPTZ) AS start_at,
    TRY_CAST(r."end" AS TIMESTAMPTZ) AS end_at
FROM views.care_home_residence AS r
LEFT JOIN views.organisations AS o ON o.organisation_key = r.home_key;
