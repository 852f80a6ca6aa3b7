//! HTTP tests: each starts the real application on port 0 over a fresh
//! database (SQLite, or PostgreSQL with `BOS_TEST_DATABASE_URL`) and a test
//! clock, and drives it with a real HTTP client.

mod agent_stream;
mod agents;
mod api;
mod campaigns;
mod command_center;
mod conversations;
mod customers;
mod edge;
mod forms;
mod imports;
mod inbox_doors;
mod inbox_ui;
mod intake;
mod invitations;
mod leads;
mod nudge_hooks;
mod nudge_trust;
mod nudges;
mod pipeline;
mod rules_editor;
mod sdk;
mod sessions;
mod settings_intake;
mod support;
mod tenant_matrix;
mod voice_hooks;
