import pickle
from itertools import product

from gml_ray.plugins.searcher import BaseSearcher
from gml_ray.searchers.builder import SEARCHERS
from gml_ray.space import Categorical, Dict, Int, List, Real, Space


@SEARCHERS.register_module()
class MySearcher(BaseSearcher):
    """
    Args:
        （required）search_space: 用户配置的超参数搜索空间
    kwargs:
        （required）reward_attribute: 反馈指标

    """
    def __init__(self, search_space, reward_attribute='acc'):
        for key, value in search_space.kwspaces.items():
            if not isinstance(value, Categorical) and \
                  not isinstance(value, Int) and \
                  not (isinstance(value, Real) and value.step is not None):
                raise TypeError(
                    'Only Categorical, Int and Real(step is not None) is \
                        supported, but {} is {}'.format(
                        key,
                        type(value).__name__))
        super(MySearcher, self).__init__(search_space, reward_attribute)
        self._configs = self._build_configs()

    def _build_configs(self):

        def build_configs_recur(s):
            if isinstance(s, (Categorical, Int, Real)):
                return s.data
            elif isinstance(s, List):
                item_configs = map(build_configs_recur, s)
                list_combs = product(*item_configs)
                # convert tuple and generator to list
                list_combs = list(map(list, list_combs))
                return list_combs
            elif isinstance(s, Dict):
                keys = list(s)
                item_configs = [build_configs_recur(s[k]) for k in keys]
                value_combs = product(*item_configs)
                ret = [dict(zip(keys, values)) for values in value_combs]
                return ret
            elif isinstance(s, Space):
                raise ValueError(
                    'GridSearcher does not support type {}'.format(type(s)))
            else:
                return [s]

        return build_configs_recur(self.space)

    def get_config(self):
        if self._configs:
            new_config = self._configs.pop()
            new_config_s = pickle.dumps(new_config)
            if new_config_s not in self._results:
                self._results[new_config_s] = self._reward_while_pending()
            return new_config
        else:
            return None

    def __len__(self):
        return len(self._configs)
