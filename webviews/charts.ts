/**
 * Chart.js, registered with only the parts the panels use. It draws on canvas and styles elements
 * through the CSSOM, so it needs neither eval nor inline style attributes under the webviews' CSP.
 */
import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, LineController, LineElement, PointElement, ScatterController, Tooltip } from 'chart.js';
import { themeColor } from './vscode.js';

Chart.register(BarController, BarElement, CategoryScale, Legend, LinearScale, LineController, LineElement, PointElement, ScatterController, Tooltip);

export { Chart };

/** Colours from the VS Code theme: charts follow light, dark and high-contrast themes. */
export function palette() {
  return {
    fg: themeColor('foreground', '#333'),
    grid: themeColor('editorWidget-border', '#8884'),
    target: themeColor('charts-red', '#e51400'),
    offTarget: themeColor('charts-blue', '#1a85ff'),
    threshold: themeColor('charts-orange', '#d18616'),
    goal: themeColor('charts-green', '#388a34'),
    series: ['charts-red', 'charts-blue', 'charts-green', 'charts-orange', 'charts-purple', 'charts-yellow'].map((n, i) => themeColor(n, ['#e51400', '#1a85ff', '#388a34', '#d18616', '#652d90', '#bf8803'][i])),
  };
}
