-- Image-processing templates (shared/ci-api.md 5.3). A job that names a
-- TemplateId copies the template's name into its echoed Operation at submit
-- time; the rule itself is read when the job runs, so an edited template
-- applies to jobs still waiting.
CREATE TABLE templates (
  template_id  text PRIMARY KEY CHECK (template_id ~ '^t1[0-9a-f]{32}$'),
  bucket       text NOT NULL,
  tag          text NOT NULL,
  name         text NOT NULL,
  -- The type container as given, e.g. {"IsPicInfo":"true","ProcessRule":"imageMogr2/rotate/90"}.
  body         json NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX templates_by_bucket ON templates (bucket, tag, created_at);
