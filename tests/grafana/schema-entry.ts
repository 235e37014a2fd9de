// The Grafana types the dashboards are validated against, all from the published
// `@grafana/schema` package: the dashboard model as the package exports it, and the options and
// custom field config of every panel plugin the dashboards use. `dashboards.mjs` turns each
// exported type into a JSON schema with ts-json-schema-generator.
import type { Dashboard } from '@grafana/schema';
import type * as BarGauge from '@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen';
import type * as Stat from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type * as Table from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen';
import type * as TimeSeries from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';

export type GrafanaDashboard = Dashboard;

export type BarGaugeOptions = BarGauge.Options;
export type StatOptions = Stat.Options;
export type TableOptions = Table.Options;
export type TableFieldConfig = Table.FieldConfig;
export type TimeSeriesOptions = TimeSeries.Options;
export type TimeSeriesFieldConfig = TimeSeries.FieldConfig;
