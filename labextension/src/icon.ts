/**
 * The extension's icon (a cat's head), themed like JupyterLab's own icons.
 */

import { LabIcon } from '@jupyterlab/ui-components';

import catSvg from '../style/cat.svg';

/** The catty icon. */
export const catIcon = new LabIcon({ name: 'catty-jupyter:cat', svgstr: catSvg });
