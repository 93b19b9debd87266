-- Completed rides per driver and hour of :ds. The DAG rolls the hours up into one row per
-- driver and day (config.json "rollup"), and carries a driver's last day over for up to
-- 3 days when they do not drive.
SELECT
  driver_id,
  date_trunc('HOUR', requested_at) AS hour_start,
  COUNT(*) AS trips_day,
  COUNT(*) AS peak_hour_trips,
  SUM(fare) AS earnings_day,
  SUM(distance_km) AS distance_km_day,
  AVG(rating) AS rating_day
FROM core.rides
WHERE ds = :ds AND status = 'completed'
GROUP BY driver_id, date_trunc('HOUR', requested_at)
