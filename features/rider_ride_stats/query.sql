-- Rider ride statistics over the 7 days ending on :ds (one row per rider who requested a ride).
SELECT
  rider_id,
  COUNT_IF(status = 'completed') AS trips_7d,
  COUNT_IF(status = 'cancelled') / COUNT(*) AS cancel_rate_7d,
  AVG(CASE WHEN status = 'completed' THEN fare END) AS avg_fare_7d,
  COALESCE(SUM(CASE WHEN status = 'completed' THEN fare END), 0.0) AS spend_7d,
  MAX(CASE WHEN status = 'completed' THEN ended_at END) AS last_ride_at
FROM core.rides
WHERE ds BETWEEN date_sub(:ds, 6) AND :ds
GROUP BY rider_id
