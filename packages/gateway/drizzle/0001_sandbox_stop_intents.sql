CREATE TABLE `sandbox_stop_intents` (
	`sandbox_id` text PRIMARY KEY NOT NULL,
	`stopped_at_ms` integer NOT NULL
);
