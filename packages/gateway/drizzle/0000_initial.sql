CREATE TABLE `objects` (
	`object_type` text NOT NULL,
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`payload` blob NOT NULL,
	`created_at_ms` integer NOT NULL,
	`updated_at_ms` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `objects_type_name_unique` ON `objects` (`object_type`,`name`);--> statement-breakpoint
CREATE INDEX `objects_type_created` ON `objects` (`object_type`,`created_at_ms`,`name`);--> statement-breakpoint
CREATE TABLE `sandbox_policies` (
	`id` text PRIMARY KEY NOT NULL,
	`sandbox_id` text NOT NULL,
	`version` integer NOT NULL,
	`policy_payload` blob NOT NULL,
	`policy_hash` text NOT NULL,
	`status` text DEFAULT 'pending' NOT NULL,
	`load_error` text,
	`created_at_ms` integer NOT NULL,
	`loaded_at_ms` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `sandbox_policies_sandbox_version_unique` ON `sandbox_policies` (`sandbox_id`,`version`);--> statement-breakpoint
CREATE INDEX `sandbox_policies_sandbox_version_desc` ON `sandbox_policies` (`sandbox_id`,`version`);