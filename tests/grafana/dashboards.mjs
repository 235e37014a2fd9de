// Validates Grafana dashboard JSON against the types of the published `@grafana/schema` package.
//
//   node dashboards.mjs generate SCHEMA_OUT
//       turns every type exported by schema-entry.ts into a JSON schema (ts-json-schema-generator,
//       no extra properties allowed anywhere the types do not allow them) and writes them, with the
//       package's version and its current dashboard `schemaVersion`, to SCHEMA_OUT.
//   node dashboards.mjs validate SCHEMA DASHBOARD...
//       prints one JSON report per dashboard: `{"file", "errors": [...]}`, an empty list when valid.
//
// The dashboard model types `options` and `fieldConfig.defaults.custom` loosely (each panel plugin
// defines its own), so each panel's are checked against its plugin's types too; a panel type with
// no schema here is an error, so a new panel type cannot slip past unchecked.
//
// Driven by tests/src/grafana.rs, which installs this folder into the harness cache.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

// Panel plugin id → the schema-entry.ts types of its options and custom field config
// (`null`: the plugin has no custom field config, so `custom` must be absent or empty).
const PANEL_TYPES = {
  bargauge: { options: 'BarGaugeOptions', custom: null },
  stat: { options: 'StatOptions', custom: null },
  table: { options: 'TableOptions', custom: 'TableFieldConfig' },
  timeseries: { options: 'TimeSeriesOptions', custom: 'TimeSeriesFieldConfig' },
};

async function generate(out) {
  const { createGenerator } = await import('ts-json-schema-generator');
  const config = {
    path: join(here, 'schema-entry.ts'),
    tsconfig: join(here, 'tsconfig.json'),
    // Inline every referenced type: the package defines some names twice (`DataSourceRef` in the
    // raw and the veneer dashboard types), which shared definitions would reject.
    expose: 'none',
    topRef: false,
    jsDoc: 'none',
    additionalProperties: false,
  };
  const names = ['GrafanaDashboard'];
  for (const panel of Object.values(PANEL_TYPES)) {
    names.push(panel.options);
    if (panel.custom) names.push(panel.custom);
  }
  const schemas = {};
  for (const name of names) {
    schemas[name] = createGenerator({ ...config, type: name }).createSchema(name);
  }
  const grafana = await import('@grafana/schema');
  const pkg = JSON.parse(
    readFileSync(join(here, 'node_modules', '@grafana', 'schema', 'package.json'), 'utf8'),
  );
  const bundle = {
    grafanaSchemaPackage: pkg.version,
    schemaVersion: grafana.defaultDashboard.schemaVersion,
    schemas,
  };
  writeFileSync(out, JSON.stringify(bundle));
}

function describe(error) {
  const where = error.instancePath || '/';
  const extra = error.params?.additionalProperty
    ? ` \`${error.params.additionalProperty}\``
    : error.params?.allowedValues
      ? ` ${JSON.stringify(error.params.allowedValues)}`
      : '';
  return `${where}: ${error.message}${extra}`;
}

function panelsOf(dashboard) {
  const panels = [];
  for (const panel of dashboard.panels ?? []) {
    panels.push(panel);
    for (const inner of panel.panels ?? []) panels.push(inner);
  }
  return panels;
}

async function validate(schemaFile, files) {
  const { default: Ajv } = await import('ajv');
  const bundle = JSON.parse(readFileSync(schemaFile, 'utf8'));
  const ajv = new Ajv({ allErrors: true, strict: false });
  const check = {};
  for (const [name, schema] of Object.entries(bundle.schemas)) check[name] = ajv.compile(schema);
  const reports = [];
  for (const file of files) {
    const errors = [];
    let dashboard;
    try {
      dashboard = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      reports.push({ file, errors: [`not JSON: ${error.message}`] });
      continue;
    }
    if (!check.GrafanaDashboard(dashboard)) {
      for (const error of check.GrafanaDashboard.errors) errors.push(describe(error));
    }
    for (const panel of panelsOf(dashboard)) {
      if (panel.type === 'row') continue;
      const at = `panel ${panel.id} "${panel.title}"`;
      const types = PANEL_TYPES[panel.type];
      if (!types) {
        errors.push(`${at}: panel type \`${panel.type}\` has no schema in schema-entry.ts`);
        continue;
      }
      const options = check[types.options];
      if (!options(panel.options ?? {})) {
        for (const error of options.errors) errors.push(`${at} options${describe(error)}`);
      }
      const custom = panel.fieldConfig?.defaults?.custom;
      if (types.custom) {
        const customCheck = check[types.custom];
        if (custom !== undefined && !customCheck(custom)) {
          for (const error of customCheck.errors) {
            errors.push(`${at} fieldConfig.defaults.custom${describe(error)}`);
          }
        }
      } else if (custom !== undefined && Object.keys(custom).length > 0) {
        errors.push(`${at}: panel type \`${panel.type}\` has no custom field config`);
      }
    }
    reports.push({ file, errors });
  }
  process.stdout.write(JSON.stringify(reports));
}

const [command, ...args] = process.argv.slice(2);
if (command === 'generate' && args.length === 1) {
  await generate(args[0]);
} else if (command === 'validate' && args.length >= 1) {
  await validate(args[0], args.slice(1));
} else {
  process.stderr.write('usage: dashboards.mjs generate OUT | validate SCHEMA DASHBOARD...\n');
  process.exit(2);
}
